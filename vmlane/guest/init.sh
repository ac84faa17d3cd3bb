#!/bin/sh
# PID 1 of the test VM: mount what systemd would (cgroup2 alone: no v1 hierarchy exists), unpack the
# job from the second disk, run it, write its output and exit code to the third disk, power off.
export PATH=/opt/venv/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8
mount -t proc proc /proc 2>/dev/null
mount -t sysfs sysfs /sys 2>/dev/null
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs -o mode=1777 tmpfs /dev/shm
mount -t tmpfs -o mode=1777 tmpfs /tmp
mount -t tmpfs -o mode=755 tmpfs /run
# as systemd mounts it: delegation to namespaces, recursive memory.min/low protection
mount -t cgroup2 -o nsdelegate,memory_recursiveprot cgroup2 /sys/fs/cgroup
ip link set lo up
hostname oomlab-vm
mkdir -p /job /out
tar -xf /dev/vdb -C /job && ln -s /job/src /src
echo "oomlab-vm: kernel $(uname -r), cgroup2 controllers: $(cat /sys/fs/cgroup/cgroup.controllers)"
(cd /src && sh /job/job.sh; echo $? > /out/rc) 2>&1 | tee /out/console.log
tar -cf /dev/vdc -C /out .
sync
echo o > /proc/sysrq-trigger
sleep 30 >/dev/null 2>&1
