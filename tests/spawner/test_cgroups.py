"""labdeck.spawner.local.cgroups (pure builders), the warm pool's cgroup field and the OOM watch's reading."""

import pytest

from labdeck.spawner.local import cgroups, warmpool
from labdeck.spawner.userserver import oomwatch, zygote

G = 1024**3


def test_v1_files_map_a_size_as_the_kubelet_does():
    assert cgroups.limit_files("v1", mem_limit=2 * G, cpu_limit=1.5, mem_guarantee=G, cpu_guarantee=0.5) == {
        "memory": [
            ("memory.soft_limit_in_bytes", str(G)),
            ("memory.limit_in_bytes", str(2 * G)),
            ("memory.memsw.limit_in_bytes", str(2 * G)),
        ],
        "cpu": [("cpu.shares", "512"), ("cpu.cfs_period_us", "100000"), ("cpu.cfs_quota_us", "150000")],
    }
    assert cgroups.limit_files("v1") == {"memory": [], "cpu": []}


def test_v2_files_and_systemd_properties_say_the_same():
    assert cgroups.limit_files("v2", mem_limit=2 * G, cpu_limit=0.5, mem_guarantee=G, cpu_guarantee=0.25) == {
        "": [("memory.low", str(G)), ("memory.max", str(2 * G)), ("memory.swap.max", "0"), ("cpu.weight", "25"), ("cpu.max", "50000 100000")]
    }
    assert cgroups.scope_properties(mem_limit=2 * G, cpu_limit=0.5, mem_guarantee=G, cpu_guarantee=0.25) == [
        ("MemoryMax", "t", 2 * G), ("MemorySwapMax", "t", 0), ("MemoryLow", "t", G), ("CPUQuotaPerSecUSec", "t", 500000), ("CPUWeight", "t", 25),
    ]  # fmt: skip
    with pytest.raises(ValueError):
        cgroups.limit_files("v3")


def test_busctl_argv_starts_a_scope_holding_the_server():
    argv = cgroups.busctl_start_scope("labdeck-x-alice.scope", 4242, [("MemoryMax", "t", 100)], "labdeck server alice")
    assert argv == [
        "busctl", "call", "--system", "org.freedesktop.systemd1", "/org/freedesktop/systemd1", "org.freedesktop.systemd1.Manager",
        "StartTransientUnit", "ssa(sv)a(sa(sv))", "labdeck-x-alice.scope", "fail", "4",
        "Description", "s", "labdeck server alice", "PIDs", "au", "1", "4242", "CollectMode", "s", "inactive-or-failed",
        "MemoryMax", "t", "100", "0",
    ]  # fmt: skip


def test_server_keys_are_distinct_and_safe():
    keys = {cgroups.server_key(u, s) for u, s in [("a", ""), ("a", "b-c"), ("a-b", "c"), ("a", "b"), ("a.b@x", ""), ("../etc", "")]}
    assert len(keys) == 6
    assert all("/" not in k and ".." not in k for k in keys)
    assert cgroups.server_key("alice") == "alice"


def test_counters_and_own_cgroups_parse():
    assert cgroups.parse_oom_kills("oom_kill_disable 0\nunder_oom 0\noom_kill 3\n") == 3
    assert cgroups.parse_oom_kills("low 0\nhigh 0\nmax 2\noom 1\noom_kill 1\n") == 1
    assert cgroups.parse_oom_kills("") == 0
    assert cgroups.own_cgroups("4:memory:/a/b\n1:cpu,cpuacct:/c\n0::/d\n") == {"memory": "/a/b", "cpu": "/c", "cpuacct": "/c", "": "/d"}


def test_a_claim_carries_the_cgroups_and_a_forged_path_is_refused():
    procs = ["/sys/fs/cgroup/memory/labdeck-x/alice/cgroup.procs"]
    identity = warmpool.identity_for(["/v/bin/labdeck-server"], [], {}, "/h/alice", cgroup_procs=procs)
    assert identity["cgroup_procs"] == procs
    assert "cgroup_procs" not in warmpool.identity_for(["/v/bin/labdeck-server"], [], {}, "/h/alice")
    for bad in (["/etc/passwd"], ["/sys/fs/cgroup/memory/x/../../../etc/cgroup.procs"], ["/sys/fs/cgroup/memory/x/tasks"], "/sys/fs/cgroup/x/cgroup.procs", [1]):
        with pytest.raises(zygote.IdentityError, match="cgroup_procs"):
            zygote.check_identity({"argv": [], "env": {}, "cwd": "/", "cgroup_procs": bad})


def test_oom_watch_reads_the_limit_and_says_what_happened(tmp_path):
    d = tmp_path / "memory" / "labdeck-x" / "alice"
    d.mkdir(parents=True)
    (d / "memory.limit_in_bytes").write_text(str(300 * 1024**2))
    (d / "memory.oom_control").write_text("oom_kill_disable 0\nunder_oom 0\noom_kill 0\n")
    proc = tmp_path / "cgroup"
    proc.write_text("4:memory:/labdeck-x/alice\n1:cpu:/labdeck-x/alice\n")
    counter, limit = oomwatch.counter_and_limit(str(proc), str(tmp_path))
    assert (counter, limit) == (str(d / "memory.oom_control"), 300 * 1024**2)

    class Log:
        lines = []

        def warning(self, text):
            self.lines.append(text)

    watch = oomwatch.OOMWatch(counter, limit, "tiny", Log())
    watch.check()
    assert Log.lines == []
    (d / "memory.oom_control").write_text("oom_kill_disable 0\nunder_oom 0\noom_kill 1\n")
    watch.check()
    watch.check()
    assert Log.lines == [oomwatch.message(limit, "tiny", 1)]
    assert "300 MB (size 'tiny')" in Log.lines[0]
    # unlimited: nothing to watch
    (d / "memory.limit_in_bytes").write_text("9223372036854771712")
    assert oomwatch.counter_and_limit(str(proc), str(tmp_path)) is None
