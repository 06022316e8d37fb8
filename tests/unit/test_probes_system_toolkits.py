"""The toolkits probe: this real machine, and fake toolkit trees in a temporary root."""
from __future__ import annotations

import json
import os

import pytest

from envdoctor.model import FactSet
from envdoctor.probes import toolkits
from envdoctor.probes.base import ProbeContext
from envdoctor.runner import Runner
from tests.fixtures import corpus
from tests.fixtures.fake_bin import path_with, sealed_tools, write_fake, write_tree, write_wrapper

REAL_TOOLKIT = "/usr/local/cuda-13.0"
on_this_machine = pytest.mark.skipif(not os.path.isfile(os.path.join(REAL_TOOLKIT, "bin", "nvcc")),
                                     reason="needs the CI machine's /usr/local/cuda-13.0")


def run(ctx) -> FactSet:
    return FactSet(toolkits.probe(ctx))


def by_root(facts: FactSet):
    return {t["real_root"]: t for t in facts.value("toolkits")}


def real_machine(**env) -> ProbeContext:
    base = {"PATH": "/usr/local/bin:/usr/bin:/bin"}
    base.update(env)
    return ProbeContext(env=base, paths=())


# ---- this machine --------------------------------------------------------------

@on_this_machine
def test_this_machine_nvcc_wrapper_and_symlink_are_one_toolkit():
    facts = run(real_machine())
    found = by_root(facts)
    entry = found[REAL_TOOLKIT]
    assert entry["found_via"][:2] == ["nvcc on PATH", "/usr/local/cuda*"]
    assert "/usr/local/cuda" in entry["aliases"]
    assert entry["version"] == "13.0.88" and entry["version_source"] == "dist-info"
    assert entry["has_cudart"] and entry["has_runtime_header"] and entry["has_nvcc"]
    assert entry["kind"] == "system"
    assert "/usr/local" not in found  # the wrapper's directory is not a toolkit
    assert facts.value("nvcc.path") == "/usr/local/bin/nvcc"
    assert facts.value("nvcc.real_path") == REAL_TOOLKIT + "/bin/nvcc"
    assert facts.value("nvcc.toolkit") == REAL_TOOLKIT
    assert facts.value("nvcc.version") == "13.0.88"
    # A distribution's /usr/bin/nvcc (and /bin/nvcc, the same file on merged-/usr systems) may follow.
    assert facts.value("nvcc.all")[0] == "/usr/local/bin/nvcc"
    assert all(p in ("/usr/bin/nvcc", "/bin/nvcc") for p in facts.value("nvcc.all")[1:])
    assert "sm_86" in facts.value("nvcc.archs") and "sm_52" not in facts.value("nvcc.archs")
    assert "/usr/local/bin/nvcc -> " + REAL_TOOLKIT + "/bin/nvcc" in facts.get("toolkits").raw


@on_this_machine
def test_this_machine_usr_local_has_no_cudart():
    # What torch guesses from `which nvcc` when CUDA_HOME is unset; the rules need this.
    assert not toolkits.has_cudart("/usr/local") and not toolkits.has_runtime_header("/usr/local")


@on_this_machine
@pytest.mark.parametrize("value", ["/usr/local/cuda", ":/usr/local/cuda", '"/usr/local/cuda"',
                                   "/nonexistent/cuda:/usr/local/cuda", " /usr/local/cuda/ "])
def test_cuda_home_values_name_the_same_toolkit(value):
    facts = run(real_machine(CUDA_HOME=value))
    found = by_root(facts)
    assert list(found).count(REAL_TOOLKIT) == 1
    assert found[REAL_TOOLKIT]["found_via"][0] == "CUDA_HOME"
    assert f"CUDA_HOME={value!r}" in facts.get("toolkits").raw


@on_this_machine
def test_this_machine_pip_wheels_are_found():
    facts = run(ProbeContext(env={"PATH": "/usr/bin:/bin"}, paths=()))
    pip = [t for t in facts.value("toolkits") if t["kind"] == "pip"]
    if not pip:
        pytest.skip("no nvidia CUDA wheels in this interpreter")
    assert all(t["found_via"] == ["pip nvidia wheels"] and t["version_source"] == "dist-info" for t in pip)
    assert facts.has("nvcc.path") == os.path.exists("/usr/bin/nvcc")  # only a distribution's nvcc is there


DISTRO_NVCC = "/usr/lib/nvidia-cuda-toolkit/bin/nvcc"


@pytest.mark.skipif(not os.path.isfile(DISTRO_NVCC), reason="needs Debian's nvidia-cuda-toolkit (shared/labs)")
def test_this_machine_distribution_toolkit_is_usr_with_its_gcc_wrapper():
    # The real state of ../shared/labs/distro-cuda-toolkit.sh: /usr/bin/nvcc first on PATH.
    facts = run(ProbeContext(env={"PATH": "/usr/bin:/usr/local/bin:/bin"}, paths=()))
    entry = by_root(facts)["/usr"]
    assert entry["kind"] == "distribution" and "/usr/lib/nvidia-cuda-toolkit" in entry["aliases"]
    assert entry["version"].startswith("11.8") and entry["has_runtime_header"] and entry["has_cudart"]
    assert entry["include_dir"] == "/usr/include" and entry["missing_headers"] == []
    assert entry["nvcc_real"] == DISTRO_NVCC
    assert entry["default_host"]["command"] == "gcc-11"
    assert "/usr/lib/nvidia-cuda-toolkit" not in by_root(facts)  # one toolkit, not two
    assert facts.value("cuda.linker_cudart")["version"].startswith("11.8")


# ---- fake trees -----------------------------------------------------------------

def version_json(cuda: str, nvcc: str) -> str:
    return json.dumps({"cuda": {"name": "CUDA SDK", "version": cuda},
                       "cuda_nvcc": {"name": "CUDA NVCC", "version": nvcc}})


def make_toolkit(root: str, name: str, cuda: str, nvcc_version: str, nvcc_text=None, version_files=True,
                 archs="compute_80\n"):
    base = f"usr/local/{name}"
    files = {f"{base}/include/cuda_runtime.h": "/* header */", f"{base}/lib64/libcudart.so.{cuda.split('.')[0]}": ""}
    if version_files:
        files[f"{base}/version.json"] = version_json(cuda, nvcc_version)
    write_tree(root, files)
    if nvcc_text is not None:
        answers = {"--version": nvcc_text}
        if archs is not None:
            answers["--list-gpu-arch"] = archs
        write_fake(os.path.join(root, base, "bin"), "nvcc", answers)
    return os.path.join(root, base)


def test_two_toolkits_with_usr_local_cuda_symlink(tmp_path):
    root = str(tmp_path)
    make_toolkit(root, "cuda-11.8", "11.8.0", "11.8.89", corpus.text("nvcc-gdino-165-11.8"))
    t121 = make_toolkit(root, "cuda-12.1", "12.1.1", "12.1.105", corpus.text("nvcc-gdino-165-11.8")
                        .replace("11.8", "12.1").replace("V12.1.89", "V12.1.105"))
    write_tree(root, {"usr/local/cuda": "->cuda-12.1"})
    ctx = ProbeContext(env={"PATH": path_with(os.path.join(root, "usr/local/cuda/bin"))}, root=root, paths=())
    facts = run(ctx)
    found = by_root(facts)
    assert set(found) == {os.path.join(root, "usr/local/cuda-11.8"), t121}
    assert found[t121]["found_via"] == ["nvcc on PATH", "/usr/local/cuda*"]
    assert found[t121]["root"] == os.path.join(root, "usr/local/cuda")
    assert found[t121]["aliases"] == [t121]
    assert (found[t121]["version"], found[t121]["version_source"]) == ("12.1.105", "version.json")
    assert facts.value("nvcc.toolkit") == t121
    assert facts.value("nvcc.version") == "12.1.105"
    assert facts.value("nvcc.archs") == ["sm_80"]
    assert facts.value("nvcc.path") == os.path.join(root, "usr/local/cuda/bin/nvcc")
    assert facts.value("nvcc.real_path") == os.path.join(t121, "bin/nvcc")


def test_conda_cudatoolkit_without_nvcc(tmp_path):
    prefix = str(tmp_path / "miniconda3/envs/old")
    write_tree(prefix, {"conda-meta/cudatoolkit-11.1.74-h6bb024c_0.json": "{}",
                        "conda-meta/pytorch-1.9.0-py3.8_cuda11.1_cudnn8.0.5_0.json": "{}",
                        "lib/libcudart.so.11.0": "", "bin/python": ""})
    ctx = ProbeContext(env={"PATH": path_with(str(tmp_path / "nobin")), "CONDA_PREFIX": prefix},
                       root=str(tmp_path), paths=())
    facts = run(ctx)
    (entry,) = facts.value("toolkits")
    assert entry["kind"] == "conda" and entry["found_via"] == ["conda"]
    assert entry["has_nvcc"] is False and entry["has_cudart"] is True and entry["has_runtime_header"] is False
    assert (entry["version"], entry["version_source"]) == ("11.1.74", "conda-meta")
    assert facts.value("nvcc.all") == []
    assert facts.get("nvcc.version").error == "no nvcc on PATH"


def test_conda_env_without_cuda_is_not_a_toolkit(tmp_path):
    prefix = str(tmp_path / "env")
    write_tree(prefix, {"conda-meta/python-3.11.5-h0.json": "{}", "lib/libpython3.11.so": ""})
    ctx = ProbeContext(env={"PATH": "", "CONDA_PREFIX": prefix}, root=str(tmp_path), paths=())
    assert run(ctx).value("toolkits") == []


def test_cuda_home_at_a_conda_prefix_without_nvcc_is_listed_as_what_it_is(tmp_path):
    prefix = str(tmp_path / "env")
    write_tree(prefix, {"conda-meta/python-3.11.5-h0.json": "{}"})
    ctx = ProbeContext(env={"PATH": "", "CUDA_HOME": prefix}, root=str(tmp_path), paths=())
    (entry,) = run(ctx).value("toolkits")
    assert entry["found_via"] == ["CUDA_HOME"] and entry["kind"] == "conda"
    assert entry["has_nvcc"] is False and entry["version"] is None


def test_cuda_path_list_and_missing_dirs(tmp_path):
    root = str(tmp_path)
    t = make_toolkit(root, "cuda-12.4", "12.4.0", "12.4.99")
    ctx = ProbeContext(env={"PATH": "", "CUDA_PATH": f"/nope:{t}:"}, root=root, paths=())
    facts = run(ctx)
    assert [(e["real_root"], e["found_via"]) for e in facts.value("toolkits")] == \
        [(t, ["CUDA_PATH", "/usr/local/cuda*"])]


def test_wrapper_script_on_path_resolves_to_its_toolkit(tmp_path):
    root = str(tmp_path)
    t = make_toolkit(root, "cuda-11.8", "11.8.0", "11.8.89", corpus.text("nvcc-gdino-165-11.8"))
    bin_dir = str(tmp_path / "bin")
    write_wrapper(bin_dir, "nvcc", os.path.join(t, "bin", "nvcc"))
    ctx = ProbeContext(env={"PATH": path_with(bin_dir)}, root=root, paths=())
    facts = run(ctx)
    assert facts.value("nvcc.path") == os.path.join(bin_dir, "nvcc")
    assert facts.value("nvcc.real_path") == os.path.join(t, "bin", "nvcc")
    assert facts.value("nvcc.toolkit") == t
    assert facts.value("nvcc.version") == "11.8.89"  # ran through the wrapper's target


class CountingRunner(Runner):
    def __init__(self, env):
        super().__init__(env=env)
        self.calls = []

    def run(self, argv, **kwargs):
        self.calls.append(tuple(argv))
        return super().run(argv, **kwargs)


def test_one_nvcc_version_per_distinct_real_nvcc(tmp_path):
    root = str(tmp_path)
    t = make_toolkit(root, "cuda-10.1", "10.1", "10.1", corpus.text("nvcc-colabfold-74-10.1"), version_files=False,
                     archs=None)
    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    for d in (a, b):
        os.makedirs(d)
        os.symlink(os.path.join(t, "bin", "nvcc"), os.path.join(d, "nvcc"))
    env = {"PATH": path_with(f"{a}:{b}")}
    runner = CountingRunner(env)
    facts = run(ProbeContext(env=env, root=root, runner=runner, paths=()))
    assert facts.value("nvcc.all") == [os.path.join(a, "nvcc"), os.path.join(b, "nvcc")]
    (entry,) = facts.value("toolkits")
    assert (entry["version"], entry["version_source"]) == ("10.1.243", "nvcc --version")
    assert [c for c in runner.calls if c[1:] == ("--version",)] == [(os.path.join(t, "bin", "nvcc"), "--version")]
    # nvcc 10.1 has no --list-gpu-arch (the fake answers 127 like an unknown option)
    assert not facts.has("nvcc.archs")


def test_pip_wheels_of_another_python(tmp_path):
    site = str(tmp_path / "venv/lib/python3.10/site-packages")
    write_tree(site, {"nvidia/cuda_runtime/include/cuda_runtime.h": "", "nvidia/cuda_runtime/lib/libcudart.so.12": "",
                      "nvidia_cuda_runtime_cu12-12.1.105.dist-info/METADATA": "",
                      "nvidia/cudnn/lib/libcudnn.so.8": ""})
    bin_dir = str(tmp_path / "venv/bin")
    python = write_fake(bin_dir, "python", json.dumps([site, str(tmp_path / "nouser")]) + "\n")
    ctx = ProbeContext(env={"PATH": sealed_tools()}, root=str(tmp_path), python=python, paths=())
    (entry,) = run(ctx).value("toolkits")
    assert entry["kind"] == "pip" and entry["real_root"] == os.path.join(site, "nvidia/cuda_runtime")
    assert (entry["version"], entry["version_source"]) == ("12.1.105", "dist-info")
    assert entry["has_cudart"] and entry["has_runtime_header"] and not entry["has_nvcc"]


def test_broken_python_for_site_dirs_is_not_fatal(tmp_path):
    python = write_fake(str(tmp_path / "bin"), "python", "not json at all\n")
    ctx = ProbeContext(env={"PATH": ""}, root=str(tmp_path), python=python, paths=())
    assert run(ctx).value("toolkits") == []


def test_nvcc_that_fails_to_run(tmp_path):
    bin_dir = str(tmp_path / "cuda-x/bin")
    write_fake(bin_dir, "nvcc", {"*": "garbage\n"})
    ctx = ProbeContext(env={"PATH": bin_dir}, root=str(tmp_path), paths=())
    facts = run(ctx)
    assert facts.get("nvcc.version").error == "could not read a version from nvcc --version"
    (entry,) = facts.value("toolkits")
    assert entry["version"] is None and entry["has_nvcc"] is True


def test_env_roots():
    assert toolkits.env_roots(":/usr/local/cuda") == ["/usr/local/cuda"]
    assert toolkits.env_roots("'/opt/cuda'") == ["/opt/cuda"]
    assert toolkits.env_roots("~/cuda") == []
    assert toolkits.env_roots("") == [] and toolkits.env_roots(None) == []


def test_cuda_home_at_a_conda_package_cache_dir(tmp_path):
    # CUDA_HOME=.../pkgs/cudatoolkit-11.1.74-h6bb024c_0: a runtime-only package, no nvcc.
    pkg = str(tmp_path / "anaconda3/pkgs/cudatoolkit-11.1.74-h6bb024c_0")
    write_tree(pkg, {"info/index.json": "{}", "lib/libcudart.so.11.1.74": ""})
    ctx = ProbeContext(env={"PATH": "", "CUDA_HOME": pkg}, root=str(tmp_path), paths=())
    (entry,) = run(ctx).value("toolkits")
    assert (entry["kind"], entry["has_nvcc"], entry["has_cudart"]) == ("conda", False, True)
    assert (entry["version"], entry["version_source"]) == ("11.1.74", "conda-meta")


def test_distro_toolkit_in_usr(tmp_path):
    # apt's nvidia-cuda-toolkit: /usr/bin/nvcc, /usr/include, /usr/lib/x86_64-linux-gnu.
    usr = str(tmp_path / "usr")
    write_tree(usr, {"include/cuda_runtime.h": "", "lib/x86_64-linux-gnu/libcudart.so.11.5": ""})
    write_fake(os.path.join(usr, "bin"), "nvcc", {"--version": corpus.text("nvcc-wsl2tut-3-11.5")})
    ctx = ProbeContext(env={"PATH": os.path.join(usr, "bin")}, root=str(tmp_path), paths=())
    facts = run(ctx)
    (entry,) = facts.value("toolkits")
    assert entry["real_root"] == usr and entry["has_cudart"] and entry["has_runtime_header"]
    assert (entry["version"], entry["version_source"]) == ("11.5.119", "nvcc --version")


def test_pip_cuda12_wheels_each_root_gets_its_own_version(tmp_path):
    site = str(tmp_path / "site-packages")
    write_tree(site, {"nvidia/cuda_runtime/include/cuda_runtime.h": "", "nvidia/cuda_runtime/lib/libcudart.so.12": "",
                      "nvidia_cuda_runtime_cu12-12.4.127.dist-info/METADATA": "",
                      "nvidia_cuda_nvcc_cu12-12.4.131.dist-info/METADATA": ""})
    write_fake(os.path.join(site, "nvidia/cuda_nvcc/bin"), "nvcc", {"--version": "unused"})
    python = write_fake(str(tmp_path / "bin"), "python", json.dumps([site]) + "\n")
    ctx = ProbeContext(env={"PATH": ""}, root=str(tmp_path), python=python, paths=())
    got = {os.path.basename(t["real_root"]): (t["version"], t["has_nvcc"]) for t in run(ctx).value("toolkits")}
    assert got == {"cuda_runtime": ("12.4.127", False), "cuda_nvcc": ("12.4.131", True)}


# Debian's nvidia-cuda-toolkit layout, as installed by its package: a /usr/bin/nvcc wrapper, the
# real nvcc in /usr/lib/nvidia-cuda-toolkit/bin with an nvcc.profile that puts that directory on
# nvcc's PATH, and a gcc wrapper there that runs the first supported gcc-N installed.
_GCC_WRAPPER = """#!/bin/sh
prog=false
if g++-11 --version >/dev/null 2>&1; then
\tprog=gcc-11
elif g++-10 --version >/dev/null 2>&1; then
\tprog=gcc-10
else
\techo "ERROR: No supported gcc/g++ host compiler found." >&2
\texit 1
fi
exec $prog "$@"
"""


def debian_toolkit(root: str, compilers=("gcc-11", "g++-11")) -> str:
    usr = os.path.join(root, "usr")
    inner = os.path.join(usr, "lib/nvidia-cuda-toolkit")
    write_tree(usr, {"include/cuda_runtime.h": "", "include/cublas_v2.h": "", "include/cublasLt.h": "",
                     "include/cusparse.h": "", "include/cusolverDn.h": "", "include/curand.h": "", "include/cufft.h": "",
                     "lib/x86_64-linux-gnu/libcudart.so.11.8.89": "",
                     "lib/x86_64-linux-gnu/libcudart.so.11.0": "->libcudart.so.11.8.89",
                     "lib/x86_64-linux-gnu/libcudart.so": "->libcudart.so.11.0",
                     "lib/nvidia-cuda-toolkit/bin/nvcc.profile":
                         f"PATH += {inner}/bin:\nLIBRARIES =+ -L{usr}/lib/x86_64-linux-gnu\n",
                     "lib/nvidia-cuda-toolkit/bin/gcc": _GCC_WRAPPER})
    os.chmod(os.path.join(inner, "bin/gcc"), 0o755)
    write_fake(os.path.join(inner, "bin"), "nvcc", {"--version": corpus.text("nvcc-wsl2tut-3-11.5")
                                                    .replace("11.5", "11.8").replace("V11.8.119", "V11.8.89"),
                                                    "--list-gpu-arch": "compute_80\n"})
    write_wrapper(os.path.join(usr, "bin"), "nvcc", os.path.join(inner, "bin/nvcc"))
    for name in compilers:
        write_fake(os.path.join(root, "compilers"), name, {"--version": f"{name} (Debian 11.3.0-12) 11.3.0\n"})
    return usr


def test_debian_layout_is_one_toolkit_at_usr_with_the_wrappers_gcc(tmp_path):
    root = str(tmp_path)
    usr = debian_toolkit(root)
    ctx = ProbeContext(env={"PATH": path_with(os.path.join(usr, "bin") + ":" + os.path.join(root, "compilers"))},
                       root=root, paths=())
    facts = run(ctx)
    (entry,) = facts.value("toolkits")
    assert (entry["root"], entry["kind"]) == (usr, "distribution")
    assert entry["aliases"] == [os.path.join(usr, "lib/nvidia-cuda-toolkit")]
    assert entry["include_dir"] == os.path.join(usr, "include") and entry["missing_headers"] == []
    assert entry["default_host"] == {"command": "gcc-11", "path": os.path.join(root, "compilers", "gcc-11"),
                                     "via": os.path.join(usr, "lib/nvidia-cuda-toolkit/bin/gcc")
                                     + " (the toolkit's compiler wrapper)"}
    linked = facts.value("cuda.linker_cudart")
    assert linked["version"] == "11.8.89" and linked["dir"] == os.path.join(root, "usr/lib/x86_64-linux-gnu")
    assert facts.value("cuda.system_headers")["cublas_v2.h"] == os.path.join(root, "usr/include")


def test_debian_wrapper_without_its_compilers_names_none(tmp_path):
    root = str(tmp_path)
    usr = debian_toolkit(root, compilers=())
    facts = run(ProbeContext(env={"PATH": path_with(os.path.join(usr, "bin"))}, root=root, paths=()))
    (entry,) = facts.value("toolkits")
    assert entry["default_host"]["command"] is None and "accepts" in entry["default_host"]["error"]


def test_fake_machine_without_cuda_sees_no_real_toolkit(tmp_path):
    # Sealed: the real machine's /usr/bin/nvcc, /usr/include and libcudart are not part of a fake root.
    facts = run(ProbeContext(env={"PATH": path_with(str(tmp_path / "bin"))}, root=str(tmp_path), paths=()))
    assert facts.value("toolkits") == [] and not facts.has("nvcc.path")
    assert facts.value("cuda.linker_cudart") is None
    assert set(facts.value("cuda.system_headers").values()) == {None}
