from tests.fixtures.fake_bin import write_tree

from envdoctor.fleet.probes import boot_id, fleet_facts, infiniband, lib_dirs, loaded_nccl, net_plugins, network_env, torch_nccl

# Lines as /proc/self/maps prints them (a pip torch process).
MAPS = """\
7f1c2a000000-7f1c2a200000 r--p 00000000 08:01 123 /usr/lib/x86_64-linux-gnu/libc.so.6
7f1c30000000-7f1c30400000 r--p 00000000 08:01 456 /opt/venv/lib/python3.11/site-packages/nvidia/nccl/lib/libnccl.so.2
7f1c30400000-7f1c38000000 r-xp 00400000 08:01 456 /opt/venv/lib/python3.11/site-packages/nvidia/nccl/lib/libnccl.so.2
7f1c40000000-7f1c40001000 rw-p 00000000 00:00 0
7f1c50000000-7f1c50100000 r-xp 00000000 08:01 789 /usr/lib/x86_64-linux-gnu/libnccl.so.2.18.3
"""


def test_loaded_nccl_lists_each_mapped_library_once():
    assert loaded_nccl(MAPS) == ["/opt/venv/lib/python3.11/site-packages/nvidia/nccl/lib/libnccl.so.2",
                                 "/usr/lib/x86_64-linux-gnu/libnccl.so.2.18.3"]
    assert loaded_nccl("7f00-7f01 r-xp 0 08:01 1 /usr/lib/libcudart.so.12\n") == []


def test_network_env_by_family():
    env = {"NCCL_IB_HCA": "mlx5_0", "NCCL_DEBUG": "INFO", "FI_PROVIDER": "efa", "UCX_TLS": "rc", "PATH": "/bin",
           "NCCLX": "no"}
    assert network_env(env) == {"NCCL": {"NCCL_DEBUG": "INFO", "NCCL_IB_HCA": "mlx5_0"}, "UCX": {"UCX_TLS": "rc"},
                                "FI": {"FI_PROVIDER": "efa"}}


def test_net_plugins_found_on_ld_library_path_and_system_dirs(tmp_path):
    root = write_tree(str(tmp_path), {"opt/plug/libnccl-net.so": "", "opt/plug/libnccl.so.2": "",
                                      "usr/lib64/libnccl-net-ofi.so": "", "usr/lib64/libfoo.so": ""})
    dirs = lib_dirs({"LD_LIBRARY_PATH": f"{root}/opt/plug::{root}/missing"}, root=root)
    assert dirs[0] == f"{root}/opt/plug"
    assert net_plugins(dirs) == [f"{root}/opt/plug/libnccl-net.so", f"{root}/usr/lib64/libnccl-net-ofi.so"]
    assert net_plugins(lib_dirs({}, root=str(tmp_path / "empty"))) == []


def test_infiniband_ports_from_a_fake_sysfs(tmp_path):
    # The files sysfs has for an mlx5 port (values as `cat` prints them).
    write_tree(str(tmp_path), {
        "class/infiniband/mlx5_0/ports/1/state": "4: ACTIVE\n",
        "class/infiniband/mlx5_0/ports/1/phys_state": "5: LinkUp\n",
        "class/infiniband/mlx5_0/ports/1/rate": "400 Gb/sec (4X NDR)\n",
        "class/infiniband/mlx5_0/ports/1/link_layer": "InfiniBand\n",
        "class/infiniband/mlx5_1/ports/1/state": "1: DOWN\n",
        "class/infiniband/mlx5_1/ports/1/phys_state": "3: Disabled\n",
        "class/infiniband/mlx5_1/ports/1/rate": "10 Gb/sec (4X SDR)\n",
        "class/infiniband/mlx5_1/ports/1/link_layer": "InfiniBand\n",
    })
    assert infiniband(str(tmp_path)) == [
        {"device": "mlx5_0", "port": 1, "state": "ACTIVE", "phys_state": "LinkUp", "rate": "400 Gb/sec (4X NDR)",
         "link_layer": "InfiniBand"},
        {"device": "mlx5_1", "port": 1, "state": "DOWN", "phys_state": "Disabled", "rate": "10 Gb/sec (4X SDR)",
         "link_layer": "InfiniBand"}]
    assert infiniband(str(tmp_path / "none")) == []


def test_boot_id(tmp_path):
    write_tree(str(tmp_path), {"sys/kernel/random/boot_id": "a6b8edd9-2b55-4bd6-bc50-20ddebc7a315\n"})
    assert boot_id(str(tmp_path)) == "a6b8edd9-2b55-4bd6-bc50-20ddebc7a315"
    assert boot_id(str(tmp_path / "none")) is None


class _FakeTorch:
    """The two calls torch_nccl makes, answering as a given torch build does."""

    def __init__(self, version, nccl=True):
        outer = self

        class _Dist:
            @staticmethod
            def is_nccl_available():
                return nccl

        class _Nccl:
            @staticmethod
            def version():
                if isinstance(outer._version, Exception):
                    raise outer._version
                return outer._version

        class _Cuda:
            nccl = _Nccl

        self._version, self.distributed, self.cuda = version, _Dist, _Cuda


def test_torch_nccl_versions_in_every_encoding():
    assert torch_nccl(_FakeTorch((2, 30, 7))) == {"version": "2.30.7", "error": None}
    assert torch_nccl(_FakeTorch(21803)) == {"version": "2.18.3", "error": None}  # torch < 1.13: one integer
    assert torch_nccl(_FakeTorch(2708)) == {"version": "2.7.8", "error": None}  # NCCL < 2.9 encoding
    assert torch_nccl(_FakeTorch(None, nccl=False)) == {"version": None, "error": "this torch build has no NCCL"}
    assert torch_nccl(_FakeTorch(RuntimeError("boom")))["error"] == "RuntimeError: boom"


def test_fleet_facts_read_everything_from_the_given_roots(tmp_path):
    write_tree(str(tmp_path), {"proc/self/maps": MAPS, "proc/sys/kernel/random/boot_id": "b1\n",
                               "sys/class/infiniband/mlx5_0/ports/1/state": "4: ACTIVE\n",
                               "usr/lib/libnccl-net.so": ""})
    facts = fleet_facts({"NCCL_DEBUG": "WARN"}, sysfs_root=str(tmp_path / "sys"), proc_root=str(tmp_path / "proc"),
                        root=str(tmp_path), torch_module=_FakeTorch((2, 21, 5)))
    assert facts["nccl_torch"] == "2.21.5" and facts["boot_id"] == "b1"
    assert facts["nccl_net_plugins"] == ["libnccl-net.so"]
    assert facts["network_env"]["NCCL"] == {"NCCL_DEBUG": "WARN"}
    assert [p["state"] for p in facts["infiniband"]] == ["ACTIVE"]
    assert len(facts["nccl_loaded"]) == 2
