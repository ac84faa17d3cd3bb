"""`oomlab recommend`: a worker profile measured under the limit, a capacity plan computed from it,
and trial runs that prove where the boundary really is."""
