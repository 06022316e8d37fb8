"""Renderers and redaction, on hand-built reports (no probing)."""
import json
import string

from hypothesis import given, settings, strategies as st

from envdoctor.model import CheckResult, Fact, FactSet, Finding, Fix, Report, Severity
from envdoctor.render import load_report_text, render
from envdoctor.render.markdown import GITHUB_COMMENT_LIMIT, extract_report_data, render_markdown
from envdoctor.render.redact import Redactor, looks_secret

SECRET_ENV = {
    "HOME": "/home/alice",
    "USER": "alice",
    "HF_TOKEN": "hf_abcdefghijklmnopqrstuvwxyz012345",
    "AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    "PIP_INDEX_URL": "https://bob:s3cr3tpass@pypi.example.com/simple",
    "MY_PASSWORD": "hunter22",
}


def sample_report(extra_raw: str = "") -> Report:
    facts = FactSet([
        Fact("driver.version", "525.60.13", source="nvidia-smi", raw="NVIDIA-SMI 525.60.13  CUDA Version: 12.0"),
        Fact("driver.cuda_max", "12.0", source="nvidia-smi header"),
        Fact("gpus", [{"index": 0, "name": "NVIDIA GeForce RTX 3090", "compute_cap": "8.6",
                       "uuid": "GPU-0d1e2f3a-4b5c-6d7e-8f90-a1b2c3d4e5f6", "memory_total_mib": 24576,
                       "pci_bus_id": "00000000:01:00.0"}], source="nvidia-smi --query-gpu"),
        Fact("env.vars", {"CUDA_HOME": "/home/alice/cuda", "PIP_INDEX_URL": SECRET_ENV["PIP_INDEX_URL"]},
             source="environment", raw="HF_TOKEN=" + SECRET_ENV["HF_TOKEN"] + extra_raw),
        Fact("env.python", {"executable": "/home/alice/miniconda3/envs/m2f/bin/python", "version": "3.8.13",
                            "conda_env": "m2f"}, source="sys"),
        Fact.unavailable("torch", "import torch raised ImportError: libcudart.so.11.0: cannot open shared object"),
    ])
    finding = Finding("ED201", Severity.ERROR, "toolkit", "CUDA_HOME guess is broken",
                      "torch will use CUDA_HOME=/usr/local (no libcudart) while alice's toolkit is /home/alice/cuda",
                      ("torch.cpp_ext_cuda_home = /usr/local",),
                      (Fix("Point CUDA_HOME at the toolkit", ("export CUDA_HOME=/usr/local/cuda-13.0",), "set_env",
                           {"vars": {"CUDA_HOME": "/usr/local/cuda-13.0"}}),
                       Fix("Or install nvcc in conda", ("conda install -c nvidia cuda-nvcc=11.1",))),
                      "docs/codes/ED201.md")
    warning = Finding("ED501", Severity.WARNING, "env", "ninja missing", "ninja is not installed", (),
                      (Fix("Install ninja", ("pip install ninja",)),), "docs/codes/ED501.md")
    results = [CheckResult("ED201", "toolkit", "CUDA_HOME for extension builds", "fired"),
               CheckResult("ED501", "env", "ninja available", "fired"),
               CheckResult("ED101", "driver", "Driver runs torch's CUDA build", "passed"),
               CheckResult("ED301", "torch", "torch imports", "skipped", "not available: torch")]
    return Report(facts, [finding, warning], results, {"envdoctor_version": "0.1.0"})


def redactor(enabled=True):
    r = Redactor.from_environment(SECRET_ENV, enabled=enabled)
    r.host = "gpu-node-17"
    return r


def test_text_report_shows_findings_evidence_and_fixes():
    text = render(sample_report(), "text", redactor=redactor(enabled=False))
    assert "✗ CUDA_HOME for extension builds" in text and "[ED201]" in text
    assert "! ninja available" in text
    assert "✓ Driver runs torch's CUDA build" in text
    assert "export CUDA_HOME=/usr/local/cuda-13.0" in text
    assert "(envdoctor fix can apply this)" in text
    assert "the driver's maximum, not an installed toolkit" in text
    assert "1 error(s), 1 warning(s)" in text
    assert "\x1b[" not in text  # no colour unless asked
    assert "skipped" not in text  # only with --verbose


def test_text_report_colour_and_ascii_modes():
    assert "\x1b[" in render(sample_report(), "text", redactor=redactor(), color=True)
    ascii_text = render(sample_report(), "text", redactor=redactor(), unicode=False)
    assert "✗" not in ascii_text and "x CUDA_HOME" in ascii_text


def test_json_report_is_loadable_and_has_schema_version():
    data = json.loads(render(sample_report(), "json", redactor=redactor(enabled=False)))
    assert data["schema_version"] == 1
    assert data["summary"]["counts"] == {"info": 0, "warning": 1, "error": 1}
    loaded = load_report_text(json.dumps(data))
    assert loaded.facts.value("driver.version") == "525.60.13"


def test_markdown_round_trip_through_embedded_data():
    md = render(sample_report(), "markdown", redactor=redactor())
    assert md.startswith("## envdoctor report")
    assert "<details><summary>driver.version" in md
    loaded = load_report_text(md.replace("\n", "\r\n"), name="issue.md")
    assert loaded.facts.value("driver.cuda_max") == "12.0"
    assert [f.code for f in loaded.findings] == ["ED201", "ED501"]


def test_markdown_stays_under_github_limit_with_huge_outputs():
    report = sample_report(extra_raw="x" * 300_000)
    md = render_markdown(report, redactor())
    assert len(md) < GITHUB_COMMENT_LIMIT
    assert extract_report_data(md)["facts"]  # the data survives, raw outputs dropped


def test_markdown_fence_cannot_be_broken_by_pasted_backticks():
    md = render(sample_report(extra_raw="\n```\n# injected heading\n```"), "markdown", redactor=redactor())
    assert load_report_text(md).facts.value("driver.version") == "525.60.13"


def test_github_annotations():
    out = render(sample_report(), "github", redactor=redactor())
    assert out.splitlines()[0].startswith("::error title=ED201 CUDA_HOME guess is broken::")
    assert "%0AFix: Point CUDA_HOME" in out


def test_no_secret_or_personal_value_in_any_format():
    for fmt in ("text", "json", "markdown", "github"):
        out = render(sample_report(), fmt, redactor=redactor())
        for name in ("HF_TOKEN", "AWS_SECRET_ACCESS_KEY", "MY_PASSWORD"):
            assert SECRET_ENV[name] not in out, (fmt, name)
        assert "s3cr3tpass" not in out and "bob:" not in out, fmt
        assert "alice" not in out and "/home/alice" not in out, fmt
        assert "GPU-0d1e2f3a" not in out, fmt
    md = render(sample_report(), "markdown", redactor=redactor())
    assert "~/miniconda3/envs/m2f/bin/python" in md


def test_no_redact_keeps_personal_paths():
    out = render(sample_report(), "json", redactor=redactor(enabled=False))
    assert "/home/alice/miniconda3" in out and "GPU-0d1e2f3a" in out


def test_secret_names():
    for name in ("HF_TOKEN", "GITHUB_TOKEN", "AWS_SECRET_ACCESS_KEY", "OPENAI_API_KEY", "DB_PASSWORD", "WANDB_API_KEY"):
        assert looks_secret(name), name
    for name in ("CUDA_HOME", "PATH", "PWD", "TORCH_CUDA_ARCH_LIST", "SSH_AUTH_SOCK"):
        assert not looks_secret(name), name


def test_token_shapes_are_redacted_even_without_env():
    r = Redactor(enabled=True)
    text = "ghp_" + "a" * 36 + " AKIAIOSFODNN7EXAMPLE hf_" + "b" * 30
    out = r.text(text)
    assert "ghp_" not in out and "AKIA" not in out and "hf_b" not in out


@settings(max_examples=200, deadline=None)
@given(secret=st.text(alphabet=string.ascii_letters + string.digits + "/+=_-!@#%^&*", min_size=8, max_size=40),
       around=st.text(max_size=60))
def test_planted_secret_never_survives(secret, around):
    r = Redactor.from_environment({"SOME_TOKEN": secret, "HOME": "/home/zed", "USER": "zed"})
    data = {"facts": [{"raw": around + secret + around, "value": [secret, {"k": secret}]}]}
    assert secret not in json.dumps(r.data(data))
    assert secret not in r.text(around + secret)


def test_root_user_and_dict_keys_are_not_mangled():
    r = Redactor.from_environment({"USER": "root", "HOME": "/root"})
    data = r.data({"toolkits": [{"root": "/root/cuda", "real_root": "/usr/local/cuda-13.0"}]})
    assert data == {"toolkits": [{"root": "~/cuda", "real_root": "/usr/local/cuda-13.0"}]}
    assert r.text("the toolkit root is here") == "the toolkit root is here"
