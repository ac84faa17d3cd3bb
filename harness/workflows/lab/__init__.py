"""Labs: matrices of real runs that answer one operational question each."""
