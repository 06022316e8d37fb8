"""Environment modules: the modulefile parser on the recorded Lmod modulefiles, the probe on the
recorded Lmod state laid out in a fake root, ED209, and the module line in toolkit fixes."""
from __future__ import annotations

import os

from envdoctor.engine import diagnose
from envdoctor.model import Fact, FactSet, Severity
from envdoctor.parsers import modulefile
from envdoctor.probes import environment, modules as modules_probe, toolkits
from envdoctor.probes.base import ProbeContext
from envdoctor.rules._helpers import cuda_home_fix, module_line
from tests.fixtures import modules as recorded
from tests.fixtures.fake_bin import sealed_tools

HERE = os.path.dirname(recorded.__file__)
TORCH = {"version": "2.14.1+cu130", "cuda": "13.0", "cuda_available": False}


def text(*parts):
    with open(os.path.join(HERE, *parts), encoding="utf-8") as fh:
        return fh.read()


# ---- parser ------------------------------------------------------------------------

def test_recorded_lua_modulefile_is_read_as_lmod_evaluated_it():
    parsed = modulefile.parse(text("lua", "cuda", "13.0.lua"), "lua")
    # recorded/show_lua.txt: setenv("CUDA_HOME","/usr/local/cuda-13.0"), prepend_path("PATH",".../bin"), ...
    assert 'setenv("CUDA_HOME","/usr/local/cuda-13.0")' in text("recorded", "show_lua.txt")
    assert parsed["setenv"] == {"CUDA_HOME": "/usr/local/cuda-13.0"}
    assert parsed["prepend"] == {"PATH": ["/usr/local/cuda-13.0/bin"],
                                 "LD_LIBRARY_PATH": ["/usr/local/cuda-13.0/lib64"],
                                 "CPATH": ["/usr/local/cuda-13.0/include"]}


def test_recorded_tcl_modulefile_is_read_as_lmod_evaluated_it():
    source = text("tcl", "cudatoolkit", "13.0")
    assert modulefile.syntax_of("13.0", source) == "tcl"
    parsed = modulefile.parse(source, "tcl")
    assert 'setenv("CUDA_PATH","/usr/local/cuda-13.0")' in text("recorded", "show_tcl.txt")
    assert parsed["setenv"] == {"CUDA_PATH": "/usr/local/cuda-13.0"}
    assert parsed["prepend"]["PATH"] == ["/usr/local/cuda-13.0/bin"]
    assert parsed["prepend"]["LD_LIBRARY_PATH"] == ["/usr/local/cuda-13.0/lib64"]  # ${root}


def test_values_computed_at_load_time_stay_unknown():
    lua = modulefile.parse('local root = os.getenv("SW") .. "/cuda"\nsetenv("CUDA_HOME", root)\n'
                           'prepend_path("PATH", "/opt/x--y/bin") -- the -- in a string stays\n', "lua")
    assert lua == {"setenv": {}, "prepend": {"PATH": ["/opt/x--y/bin"]}}
    tcl = modulefile.parse("#%Module\nset root [exec spack location -i cuda]\nsetenv CUDA_HOME $root\n"
                           "prepend-path --delim : PATH $undefined/bin\nset home /sw ;# site root\n"
                           "prepend-path -d : LD_LIBRARY_PATH $home/a:$home/b\n", "tcl")
    assert tcl == {"setenv": {}, "prepend": {"LD_LIBRARY_PATH": ["/sw/a", "/sw/b"]}}


def test_not_a_modulefile():
    assert modulefile.syntax_of("13.0", "# a note, not #%Module\n") is None
    assert modulefile.syntax_of("cuda.lua", "") == "lua"


# ---- the probe on the recorded state ---------------------------------------------

def machine(tmp_path, state="env_cuda_lua.txt"):
    root = str(tmp_path)
    recorded.install(root)
    env = recorded.recorded_env(state, root)
    env.setdefault("MODULEPATH", recorded.recorded_env("env_cuda_lua.txt", root)["MODULEPATH"])
    return root, env


def probe(root, env) -> FactSet:
    ctx = ProbeContext(env=env, root=root, paths=())
    facts = FactSet(toolkits.probe(ctx) + environment.probe(ctx))
    facts.add(Fact("torch", dict(TORCH), source="test"))
    return facts


def test_loaded_lua_module_names_its_toolkit_and_the_stale_ones_are_seen(tmp_path):
    root, env = machine(tmp_path)
    assert env["LOADEDMODULES"] == "cuda/13.0" and env["_LMFILES_"].endswith("/lua/cuda/13.0.lua")
    facts = probe(root, env)
    (toolkit,) = facts.value("toolkits")
    assert toolkit["root"] == f"{root}/usr/local/cuda-13.0" and "module" in toolkit["found_via"]
    assert toolkit["module"] == {"name": "cuda/13.0", "file": f"{root}/opt/modulefiles/lua/cuda/13.0.lua",
                                 "loaded": True, "replaces": None, "builds_use": f"{root}/usr/local/cuda-13.0"}
    offered = {o["name"]: o for o in facts.value("modules")["offered"]}
    assert sorted(offered) == ["cuda/11.8", "cuda/13.0", "cudatoolkit/12.4", "cudatoolkit/13.0"]
    assert [n for n, o in offered.items() if not o["root_exists"]] == ["cuda/11.8", "cudatoolkit/12.4"]
    assert offered["cudatoolkit/13.0"]["syntax"] == "tcl" and offered["cudatoolkit/13.0"]["sets"] == ["CUDA_PATH"]
    assert not offered["cudatoolkit/13.0"]["loaded"]


def test_toolkit_offered_by_a_module_is_found_before_it_is_loaded(tmp_path):
    root = str(tmp_path)
    recorded.install(root)
    # Only MODULEPATH: nothing loaded, no CUDA on PATH, the toolkit where only its module knows it.
    os.makedirs(f"{root}/sw")
    os.rename(f"{root}/usr/local/cuda-13.0", f"{root}/sw/cuda-13.0")
    module = f"{root}/opt/modulefiles/tcl/cudatoolkit/13.0"
    with open(module, encoding="utf-8") as fh:
        source = fh.read().replace(f"{root}/usr/local/cuda-", f"{root}/sw/cuda-")
    with open(module, "w", encoding="utf-8") as fh:
        fh.write(source)
    env = {"PATH": sealed_tools(), "MODULEPATH": f"{root}/opt/modulefiles/tcl"}
    facts = probe(root, env)
    (toolkit,) = facts.value("toolkits")
    assert toolkit["real_root"] == f"{root}/sw/cuda-13.0" and toolkit["found_via"] == ["module"]
    assert toolkit["module"]["name"] == "cudatoolkit/13.0" and not toolkit["module"]["loaded"]
    assert module_line(toolkit) == "module load cudatoolkit/13.0"
    fix = cuda_home_fix(toolkit)
    assert fix.commands[-1] == "module load cudatoolkit/13.0"
    assert fix.commands[:-1] == (f"export CUDA_HOME={root}/sw/cuda-13.0",
                                 f'export PATH={root}/sw/cuda-13.0/bin"${{PATH:+:$PATH}}"')
    assert fix.params == {"vars": {"CUDA_HOME": f"{root}/sw/cuda-13.0"}, "path_prepend": [f"{root}/sw/cuda-13.0/bin"]}


def test_only_cuda_modulefiles_are_read(tmp_path):
    root = str(tmp_path)
    os.makedirs(f"{root}/mf/gcc")
    os.makedirs(f"{root}/gcc/bin")
    with open(f"{root}/mf/gcc/12.lua", "w", encoding="utf-8") as fh:
        fh.write(f'prepend_path("PATH", "{root}/gcc/bin")\n')
    with open(f"{root}/mf/gcc/.version", "w", encoding="utf-8") as fh:
        fh.write("#%Module\nset ModulesVersion 12\n")
    assert modules_probe.scan(ProbeContext(env={"MODULEPATH": f"{root}/mf:relative:/missing"}, root=root)) == \
        {"modulepath": [f"{root}/mf", "relative", "/missing"], "loaded": [], "offered": []}


# ---- ED209 and the module line -----------------------------------------------------

def codes(facts):
    return {f.code: f for f in diagnose(facts).findings if f.code.startswith("ED2")}


def test_loaded_stale_module_is_an_error_and_swapped_for_the_good_one(tmp_path):
    root, env = machine(tmp_path, "env_after_swap.txt")  # module swap cuda/13.0 cuda/11.8, as recorded
    report = diagnose(probe(root, env))
    stale = [f for f in report.findings if f.code == "ED209"]
    loaded = next(f for f in stale if f.severity == Severity.ERROR)
    assert loaded.message.startswith(f"The loaded module cuda/11.8 ({root}/opt/modulefiles/lua/cuda/11.8.lua) names "
                                     f"the toolkit {root}/opt/cuda/11.8, which does not exist")
    assert loaded.fixes[0].commands == ("module swap cuda/11.8 cuda/13.0",)
    assert [f.severity for f in stale].count(Severity.INFO) == 1  # cudatoolkit/12.4, not loaded
    home = next(f for f in report.findings if f.code == "ED205")  # CUDA_HOME names the missing root
    assert home.fixes[0].commands[-1] == "module swap cuda/11.8 cuda/13.0"


def test_modules_that_all_exist_are_silent(tmp_path):
    root, env = machine(tmp_path)
    for stale in ("lua/cuda/11.8.lua", "tcl/cudatoolkit/12.4"):
        os.remove(f"{root}/opt/modulefiles/{stale}")
    found = codes(probe(root, env))
    assert "ED209" not in found and not found  # the loaded cuda/13.0 is what builds use: nothing to say


def test_no_module_line_for_a_toolkit_no_module_offers():
    toolkit = {"root": "/usr/local/cuda-13.0", "real_root": "/usr/local/cuda-13.0", "module": None}
    assert module_line(toolkit) is None
    assert cuda_home_fix(toolkit).commands == ("export CUDA_HOME=/usr/local/cuda-13.0",
                                               'export PATH=/usr/local/cuda-13.0/bin"${PATH:+:$PATH}"')
