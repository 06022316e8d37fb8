"""The builds probe on a real extension built here, on broken copies of it, and on scan edge cases."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import textwrap

import pytest

from envdoctor.probes import builds
from envdoctor.probes._ext_loading import demangle_light, explain_import_error
from envdoctor.probes.base import ProbeContext
from envdoctor.probes.builds import describe_build_dir, probe_builds

# A tiny CPU extension that really links libtorch (c10): quick to build, real build.ninja and .so.
SETUP_PY = """\
from setuptools import setup
from torch.utils.cpp_extension import BuildExtension, CppExtension
setup(name="tinyext", ext_modules=[CppExtension("tinyext", ["tinyext.cpp"], extra_compile_args=["-O0", "-g0"])],
      cmdclass={"build_ext": BuildExtension})
"""
TINYEXT_CPP = """\
#include <Python.h>
#include <c10/core/Device.h>
static PyObject* device_str(PyObject*, PyObject*) {
  return PyUnicode_FromString(c10::Device("cpu").str().c_str());
}
static PyMethodDef methods[] = {{"device_str", device_str, METH_NOARGS, "c10::Device(cpu).str()"},
                                {nullptr, nullptr, 0, nullptr}};
static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "tinyext", nullptr, -1, methods};
PyMODINIT_FUNC PyInit_tinyext(void) { return PyModule_Create(&module); }
"""
EXT_SUFFIX = ".cpython-%d%d-x86_64-linux-gnu.so" % sys.version_info[:2]


@pytest.fixture(scope="session")
def built_ext(tmp_path_factory):
    """(project dir, path of the built .so): built once per session with torch's own builder."""
    project = tmp_path_factory.mktemp("tinyext")
    (project / "setup.py").write_text(SETUP_PY)
    (project / "tinyext.cpp").write_text(TINYEXT_CPP)
    env = dict(os.environ, MAX_JOBS="1", PYTHONDONTWRITEBYTECODE="1")
    proc = subprocess.run([sys.executable, "setup.py", "build_ext"], cwd=project, env=env,
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    so = next(project.glob("build/lib.*/tinyext*.so"))
    return project, str(so)


def _ctx(*paths, **kw):
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": os.environ.get("HOME", "/root")}
    return ProbeContext(env=env, paths=[str(p) for p in paths], **kw)


def _by_kind(facts):
    items = {f.key: f for f in facts}["builds"].value
    return ([i for i in items if i["kind"] == "build_dir"], [i for i in items if i["kind"] == "extension"])


def _copy_patched(so: str, dest_dir, replace) -> str:
    dest_dir.mkdir(parents=True, exist_ok=True)
    data = open(so, "rb").read()
    dest = dest_dir / os.path.basename(so)
    dest.write_bytes(replace(data))
    return str(dest)


@pytest.mark.slow
def test_real_build_is_described_and_imports(built_ext):
    project, so = built_ext
    build_dirs, exts = _by_kind(probe_builds(_ctx(project)))
    import torch

    assert len(build_dirs) == 1 and len(exts) == 1
    bd = build_dirs[0]
    assert bd["path"] == str(project / "build")  # what a person removes to drop the build
    assert bd["built_with"]["build_ninja"].startswith(str(project / "build" / "temp."))
    assert bd["name"] == "tinyext" and bd["owner"] == "other"
    assert bd["built_with"]["python"] == "%d.%d" % sys.version_info[:2]
    assert bd["built_with"]["torch"] == torch.__version__
    assert bd["built_with"]["is_cuda"] is False and bd["built_with"]["nvcc"] is None
    ext = exts[0]
    assert ext["path"] == so and ext["imports"] is True and ext["import_error"] is None
    assert "libc10.so" in ext["built_with"]["needed"]
    assert ext["built_with"]["torch"] == torch.__version__


@pytest.mark.slow
def test_broken_copies_do_not_import(built_ext, tmp_path):
    _, so = built_ext
    symbol = re.search(rb"_ZN\w*3c10\w+", open(so, "rb").read()).group(0)
    broken_symbol = symbol.replace(b"Device", b"Devicf", 1)
    undefined = _copy_patched(so, tmp_path / "undef", lambda d: d.replace(symbol, broken_symbol))
    missing_dep = _copy_patched(so, tmp_path / "dep", lambda d: d.replace(b"libc10.so\x00", b"libc1x.so\x00"))
    truncated = _copy_patched(so, tmp_path / "trunc", lambda d: d[:200])
    old_python = tmp_path / "py38" / ("tinyext.cpython-38-x86_64-linux-gnu.so")
    old_python.parent.mkdir()
    shutil.copy(so, old_python)
    _, exts = _by_kind(probe_builds(_ctx(tmp_path)))
    result = {e["path"]: e for e in exts}
    assert result[undefined]["imports"] is False
    assert "undefined symbol" in result[undefined]["import_error"]
    assert "c10::" in result[undefined]["import_error"] and "different torch" in result[undefined]["import_error"]
    assert result[missing_dep]["imports"] is False
    assert "libc1x.so: cannot open shared object file" in result[missing_dep]["import_error"]
    assert result[truncated]["imports"] is False and "ELF" in result[truncated]["import_error"]
    assert result[str(old_python)]["imports"] is False
    assert "built for CPython 3.8" in result[str(old_python)]["import_error"]
    assert result[str(old_python)]["built_with"]["python"] == "3.8"


@pytest.mark.slow
def test_a_crashing_library_costs_only_itself(built_ext, tmp_path):
    _, so = built_ext
    boom_c = tmp_path / "boom.c"
    boom_c.write_text("#include <signal.h>\n__attribute__((constructor)) static void boom(void) { raise(SIGSEGV); }\n")
    ext_dir = tmp_path / "exts"
    ext_dir.mkdir()
    boom = ext_dir / ("aaa_boom" + EXT_SUFFIX)  # sorts first: the good one is loaded after the crash
    subprocess.run(["gcc", "-shared", "-fPIC", "-o", str(boom), str(boom_c)], check=True, timeout=120)
    good = ext_dir / os.path.basename(so)
    shutil.copy(so, good)
    _, exts = _by_kind(probe_builds(_ctx(tmp_path)))
    result = {e["path"]: e for e in exts}
    assert result[str(boom)]["imports"] is False and "SIGSEGV" in result[str(boom)]["import_error"]
    assert result[str(good)]["imports"] is True


def test_inplace_extension_is_linked_to_its_build(tmp_path):
    fixture = os.path.join(os.path.dirname(__file__), "..", "fixtures", "builds", "msda_cu111_build.ninja")
    ops = tmp_path / "ops"
    (ops / "build" / "temp.linux-x86_64-3.8").mkdir(parents=True)
    shutil.copy(fixture, ops / "build" / "temp.linux-x86_64-3.8" / "build.ninja")
    (ops / "setup.py").write_text("from torch.utils.cpp_extension import CUDAExtension\n")
    so = ops / "MultiScaleDeformableAttention.cpython-38-x86_64-linux-gnu.so"
    so.write_bytes(b"")  # unreadable as ELF: described from its build.ninja, not loaded
    _, exts = _by_kind(probe_builds(_ctx(tmp_path)))
    assert [e["path"] for e in exts] == [str(so)]
    bw = exts[0]["built_with"]
    assert bw["cuda"] == "11.1" and bw["python"] == "3.8" and bw["archs"][:2] == ["sm_75", "sm_80"]
    assert bw["build_dir"] == str(ops / "build" / "temp.linux-x86_64-3.8")


@pytest.mark.slow
def test_torch_jit_build_dir(built_ext, tmp_path):
    # ~/.cache/torch_extensions layout: build.ninja and name.so side by side; an op library (no PyInit_myop).
    project, so = built_ext
    jit = tmp_path / "torch_extensions" / ("py%d%d_cu130" % sys.version_info[:2]) / "myop"
    jit.mkdir(parents=True)
    shutil.copy(next(project.glob("build/temp.*/build.ninja")), jit / "build.ninja")
    shutil.copy(so, jit / "myop.so")
    build_dirs, exts = _by_kind(probe_builds(_ctx(tmp_path / "torch_extensions")))
    assert [b["path"] for b in build_dirs] == [str(jit)]
    assert [e["path"] for e in exts] == [str(jit / "myop.so")]
    assert exts[0]["imports"] is True  # loaded with torch.ops.load_library
    assert exts[0]["built_with"]["build_dir"] == str(jit)


@pytest.mark.slow
def test_installed_op_is_found_outside_the_scanned_tree(built_ext, tmp_path):
    # `sh make.sh` installs MultiScaleDeformableAttention into site-packages: the copy import finds.
    _, so = built_ext
    site = tmp_path / "site" / "MultiScaleDeformableAttention-1.0-py3.11-linux-x86_64.egg"
    site.mkdir(parents=True)
    installed = site / ("MultiScaleDeformableAttention" + EXT_SUFFIX)
    shutil.copy(so, installed)
    scanned = tmp_path / "project"
    scanned.mkdir()
    ctx = _ctx(scanned)
    ctx.env["PYTHONPATH"] = str(site)
    _, exts = _by_kind(probe_builds(ctx))
    assert [e["path"] for e in exts] == [str(installed)]
    assert exts[0]["installed"] is True and exts[0]["owner"] == "mask2former"
    # A copy of tinyext under another module name has no PyInit_MultiScaleDeformableAttention,
    # so it loads as an op library: dlopen works, and that is what is reported.
    assert exts[0]["imports"] is True


def test_msda_cu111_fixture_is_parsed(tmp_path):
    build_dir = tmp_path / "ops" / "build" / "temp.linux-x86_64-3.8"
    build_dir.mkdir(parents=True)
    fixture = os.path.join(os.path.dirname(__file__), "..", "fixtures", "builds", "msda_cu111_build.ninja")
    shutil.copy(fixture, build_dir / "build.ninja")
    item = describe_build_dir(str(build_dir.parent))
    assert item["path"] == str(build_dir.parent)
    assert item["name"] == "MultiScaleDeformableAttention" and item["owner"] == "mask2former"
    bw = item["built_with"]
    assert bw["cuda"] == "11.1" and bw["cuda_major"] == 11 and bw["cuda_home"] == "/usr/local/cuda-11.1"
    assert bw["nvcc"] == "/usr/local/cuda-11.1/bin/nvcc"
    assert bw["python"] == "3.8" and bw["cxx11_abi"] is False
    assert bw["archs"] == ["sm_75", "sm_80", "compute_86", "sm_86"]
    assert bw["torch_include"].endswith("envs/mask2former/lib/python3.8/site-packages/torch/include")


def test_scan_finds_build_dirs_without_imports(tmp_path):
    build_dir = tmp_path / "proj" / "build" / "temp.linux-x86_64-3.8"
    build_dir.mkdir(parents=True)
    shutil.copy(os.path.join(os.path.dirname(__file__), "..", "fixtures", "builds", "msda_cu111_build.ninja"),
                build_dir / "build.ninja")
    (tmp_path / "proj" / "build" / "temp.linux-x86_64-3.8" / "other.ninja").write_text("x")
    build_dirs, exts = _by_kind(probe_builds(_ctx(tmp_path)))
    assert [b["path"] for b in build_dirs] == [str(build_dir.parent)] and exts == []


def test_newest_of_several_temp_dirs_describes_the_build(tmp_path):
    fixture = os.path.join(os.path.dirname(__file__), "..", "fixtures", "builds", "msda_cu111_build.ninja")
    build = tmp_path / "ops" / "build"
    old, new = build / "temp.linux-x86_64-3.7", build / "temp.linux-x86_64-cpython-310"
    for d in (old, new):
        d.mkdir(parents=True)
    text = open(fixture).read()
    (old / "build.ninja").write_text(text.replace("cuda-11.1", "cuda-10.2").replace("python3.8", "python3.7"))
    (new / "build.ninja").write_text(text.replace("python3.8", "python3.10"))
    os.utime(old / "build.ninja", (1_600_000_000, 1_600_000_000))
    build_dirs, _ = _by_kind(probe_builds(_ctx(tmp_path)))
    assert len(build_dirs) == 1 and build_dirs[0]["path"] == str(build)
    assert build_dirs[0]["built_with"]["python"] == "3.10" and build_dirs[0]["built_with"]["cuda"] == "11.1"


def test_symlinks_are_not_followed(tmp_path):
    outside = tmp_path / "outside"
    (outside / "build" / "temp.linux-x86_64-3.8").mkdir(parents=True)
    shutil.copy(os.path.join(os.path.dirname(__file__), "..", "fixtures", "builds", "msda_cu111_build.ninja"),
                outside / "build" / "temp.linux-x86_64-3.8" / "build.ninja")
    (outside / ("ext" + EXT_SUFFIX)).write_bytes(b"\x7fELF not really")
    tree = tmp_path / "tree"
    tree.mkdir()
    os.symlink(tree, tree / "loop")
    os.symlink(outside, tree / "out_dir")
    os.symlink(outside / ("ext" + EXT_SUFFIX), tree / ("linked" + EXT_SUFFIX))
    facts = {f.key: f for f in probe_builds(_ctx(tree))}
    assert facts["builds"].value == []


def test_depth_and_skip_dirs(tmp_path):
    deep = tmp_path / "a" / "b" / "c" / "d" / "e" / "f"
    deep.mkdir(parents=True)
    (deep / ("deep" + EXT_SUFFIX)).write_bytes(b"junk")
    hidden = tmp_path / "node_modules"
    hidden.mkdir()
    (hidden / ("nm" + EXT_SUFFIX)).write_bytes(b"junk")
    venv = tmp_path / "venv"
    venv.mkdir()
    (venv / "pyvenv.cfg").write_text("home = /usr/bin\n")
    (venv / ("v" + EXT_SUFFIX)).write_bytes(b"junk")
    shallow = tmp_path / "a" / ("shallow" + EXT_SUFFIX)
    shallow.write_bytes(b"junk")
    _, exts = _by_kind(probe_builds(_ctx(tmp_path, scan_depth=4)))
    assert [e["path"] for e in exts] == [str(shallow)]
    assert exts[0]["imports"] is False and "ELF" in exts[0]["import_error"]


def test_entry_cap_is_reported(tmp_path, monkeypatch):
    monkeypatch.setattr(builds, "MAX_ENTRIES", 5)
    for i in range(20):
        (tmp_path / f"f{i}.txt").write_text("x")
    facts = {f.key: f for f in probe_builds(_ctx(tmp_path))}
    assert "stopped after 5 entries" in facts["builds"].source
    assert "stopped" in facts["builds"].raw


def test_quick_mode_does_not_load(tmp_path):
    shutil.copy(sys.executable, tmp_path / ("real_elf" + EXT_SUFFIX))  # a valid ELF file
    (tmp_path / ("empty" + EXT_SUFFIX)).write_bytes(b"")
    _, exts = _by_kind(probe_builds(_ctx(tmp_path, quick=True)))
    result = {os.path.basename(e["path"]).split(".")[0]: e for e in exts}
    assert result["real_elf"]["imports"] is None and "quick mode" in result["real_elf"]["import_error"]
    assert result["empty"]["imports"] is False  # unreadable as ELF: known without loading


def test_ext_sources_found_under_setup_py(tmp_path):
    proj = tmp_path / "ops"
    (proj / "src" / "cuda").mkdir(parents=True)
    (proj / "setup.py").write_text("from torch.utils.cpp_extension import CUDAExtension\n")
    (proj / "src" / "cuda" / "ms_deform_attn_cuda.cu").write_text(textwrap.dedent("""\
        #include <THC/THC.h>
        void f(at::Tensor value) {
            AT_DISPATCH_FLOATING_TYPES(value.type(), "ms_deform_attn_forward_cuda", ([&] {}));
        }
    """))
    (tmp_path / "unrelated").mkdir()
    (tmp_path / "unrelated" / "x.cu").write_text("#include <THC/THC.h>\n")
    facts = {f.key: f for f in probe_builds(_ctx(tmp_path))}
    found = facts["ext_sources"].value
    apis = {(os.path.basename(f["file"]), f["line"]) for f in found}
    assert ("ms_deform_attn_cuda.cu", 1) in apis and ("ms_deform_attn_cuda.cu", 3) in apis
    assert all("unrelated" not in f["file"] for f in found)
    assert all({"file", "line", "api", "text", "replacement"} <= set(f) for f in found)


def test_minimal_scan_matches_shape(tmp_path):
    (tmp_path / "a.cpp").write_text("AT_CHECK(x, \"bad\");\nauto p = x.data<float>();\n")
    found = builds._minimal_scan(str(tmp_path))
    assert [(f["line"], f["api"]) for f in found] == [(1, "AT_CHECK"), (2, ".data<T>()")]


@pytest.mark.parametrize("symbol, expected", [
    ("_ZNK2at10TensorBase8data_ptrIdEEPT_v", "at::TensorBase::data_ptr"),
    ("_ZN3c106Device3strEv", "c10::Device::str"),
    ("_Z27ms_deform_attn_cuda_forwardRKN2at6TensorE", "ms_deform_attn_cuda_forward"),
    ("not_mangled", None),
])
def test_demangle_light(symbol, expected):
    assert demangle_light(symbol) == expected


def test_explain_import_error_marks_libtorch_symbols():
    text = explain_import_error("ImportError: /x/_C.so: undefined symbol: _ZNK2at10TensorBase8data_ptrIdEEPT_v")
    assert "at::TensorBase::data_ptr" in text and "different torch" in text
    own = explain_import_error("ImportError: x.so: undefined symbol: _Z27ms_deform_attn_cuda_forwardRKN2at6TensorE")
    assert "different torch" not in own and "ms_deform_attn_cuda_forward" in own


@pytest.mark.parametrize("needed, cuda, is_cuda", [
    (["libcudart.so.11.0", "libc10_cuda.so", "libc10.so"], "11", True),
    (["libcudart.so.12", "libc10.so"], "12", True),
    (["libcudart.so.10.1"], "10.1", True),
    (["libc10_cuda.so", "libtorch_cuda.so"], None, True),
    (["libc10.so", "libstdc++.so.6"], None, False),
])
def test_cuda_from_needed(needed, cuda, is_cuda):
    from envdoctor.parsers.elf import cuda_from_needed

    result = cuda_from_needed(needed)
    assert result["cuda"] == cuda and result["is_cuda"] is is_cuda


def test_elf_reader_on_a_real_library():
    from envdoctor.parsers.elf import read_dynamic
    import torch

    lib = os.path.join(os.path.dirname(torch.__file__), "lib", "libtorch_cuda.so")
    result = read_dynamic(lib)
    assert result["error"] is None
    assert "libc10_cuda.so" in result["needed"] and any(n.startswith("libcudart.so") for n in result["needed"])
    assert result["soname"] == "libtorch_cuda.so"


def test_unreadable_build_ninja_costs_only_itself(tmp_path, monkeypatch):
    good = tmp_path / "good" / "build" / "temp.linux-x86_64-3.8"
    good.mkdir(parents=True)
    shutil.copy(os.path.join(os.path.dirname(__file__), "..", "fixtures", "builds", "msda_cu111_build.ninja"),
                good / "build.ninja")
    bad = tmp_path / "bad" / "build" / "temp.linux-x86_64-3.8"
    bad.mkdir(parents=True)
    (bad / "build.ninja").write_text("cflags = -I/x/torch/include\n")
    real_parse = builds.build_ninja.parse

    def parse(text, build_dir=None):
        if "/x/torch" in text:
            raise UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte")
        return real_parse(text, build_dir)

    monkeypatch.setattr(builds.build_ninja, "parse", parse)
    build_dirs, _ = _by_kind(probe_builds(_ctx(tmp_path)))
    by_path = {b["path"]: b for b in build_dirs}
    assert by_path[str(good.parent)]["name"] == "MultiScaleDeformableAttention"
    assert "could not read it" in by_path[str(bad.parent)]["import_error"]
    assert by_path[str(bad.parent)]["built_with"]["archs"] == []
