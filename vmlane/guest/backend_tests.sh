#!/bin/sh
# The lane's job: the limits backend's tests on cgroup v2, as root and, at the same time, as an
# unprivileged user inside a subtree delegated the way systemd's user@.service delegates it (the user
# owns the directory, cgroup.procs, cgroup.subtree_control and cgroup.threads; memory is enabled above).
cd /src
# software emulation is several times slower than the host: the tests' time limits scale
# the repository's harness/ and scenarios/ are the package oomlab and oomlab.scenarios (pyproject's
# package-dir): laid out under that name, readable by both users
rm -rf /srv/py && mkdir -p /srv/py && cp -r /src/harness /srv/py/oomlab && cp -r /src/scenarios /srv/py/oomlab/scenarios
export PYTHONPATH=/srv/py:/src OOMLAB_IN_VM=1 OOMLAB_EXPECT_CGROUP=2 OOMLAB_TEST_TIME_SCALE=6
python -m compileall -q -j 2 /srv/py tests >/dev/null  # once, for both users' processes
PYTEST="python -m pytest -p no:cacheprovider -q -o addopts=-ra --timeout=900 --durations=5 $*"

cg=/sys/fs/cgroup
service=$cg/user.slice/user-1000.slice/user@1000.service
mkdir -p "$service"
for level in "$cg" "$cg/user.slice" "$cg/user.slice/user-1000.slice"; do
  echo +memory > "$level/cgroup.subtree_control"
done
chown tester:tester "$service" "$service/cgroup.procs" "$service/cgroup.subtree_control" "$service/cgroup.threads"
# what the user's manager does in its own subtree: enable memory, make a scope for a command
setpriv --reuid=tester --regid=tester --init-groups sh -c \
  "echo +memory > $service/cgroup.subtree_control && mkdir -p $service/app.slice/run-tests.scope"

# both at once, each on one of the VM's two CPUs, balanced: SIGINT and SIGTERM take the same path, root
# has the SIGTERMed run (and the refusal), the user the SIGKILLed run swept by the next one
# each pass's run directories come back with the output (/out), the evidence when a test fails
mkdir -p /out/root /out/user && chown tester:tester /out/user
echo "== root and uid $(id -u tester) (in $service/app.slice/run-tests.scope) at once"
($PYTEST --basetemp=/out/root/tmp -k 'not SIGINT and not sigkilled' tests/worker/limits tests/vm; echo $? > /tmp/root.rc) 2>&1 \
  | sed -u 's/^/root| /' &
(sh -c "echo \$\$ > $service/app.slice/run-tests.scope/cgroup.procs && \
  exec setpriv --reuid=tester --regid=tester --init-groups env HOME=/home/tester OOMLAB_DELEGATED=$service \
  $PYTEST --basetemp=/out/user/tmp -k 'not SIGINT and not SIGTERM' tests/worker/limits"; echo $? > /tmp/user.rc) 2>&1 | sed -u 's/^/user| /' &
wait
echo "== root: $(cat /tmp/root.rc), delegated user: $(cat /tmp/user.rc)"
[ "$(cat /tmp/root.rc)" = 0 ] && [ "$(cat /tmp/user.rc)" = 0 ]
