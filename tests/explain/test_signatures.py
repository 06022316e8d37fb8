"""Every signature fires on its must-fire examples and stays silent on its must-not-fire ones."""
from __future__ import annotations

import os

import pytest

from envdoctor.explain import explain
from envdoctor.explain.analysis import matches
from envdoctor.explain.catalog import SIGNATURES
from envdoctor.explain.signature import CAUSE, SYMPTOM, TALK

FIRE = [(s.id, s.category, text) for s in SIGNATURES for text in s.must_fire]
SILENT = [(s.id, s.category, text) for s in SIGNATURES for text in s.must_not_fire]
DOC = os.path.join(os.path.dirname(__file__), "..", "..", "docs", "explain.md")


def test_every_signature_has_both_kinds_of_example():
    for signature in SIGNATURES:
        assert signature.must_fire and signature.must_not_fire, signature.id
        assert signature.strength in (CAUSE, SYMPTOM, TALK)
        assert 0 < signature.confidence <= 1


def test_signature_ids_are_unique_and_documented():
    ids = [s.id for s in SIGNATURES]
    assert len(ids) == len(set(ids))
    with open(DOC, encoding="utf-8") as fh:
        doc = fh.read()
    for signature in SIGNATURES:
        assert f"`{signature.category}`" in doc, signature.category


@pytest.mark.parametrize("sig_id,category,text", FIRE, ids=[f"{i}-{n}" for n, (i, _, _) in enumerate(FIRE)])
def test_must_fire(sig_id, category, text):
    signature = next(s for s in SIGNATURES if s.id == sig_id)
    assert matches(signature, text), f"{sig_id} does not fire on {text!r}"
    found = explain(text)
    assert category in [e.category for e in found], [(e.signature, e.category) for e in found]
    mine = next(e for e in found if e.category == category)
    assert mine.diagnosis and mine.fix and "{" not in mine.diagnosis + mine.fix


@pytest.mark.parametrize("sig_id,category,text", SILENT, ids=[f"{i}-{n}" for n, (i, _, _) in enumerate(SILENT)])
def test_must_not_fire(sig_id, category, text):
    signature = next(s for s in SIGNATURES if s.id == sig_id)
    assert not matches(signature, text), text
    assert all(e.signature != sig_id for e in explain(text)), text


@pytest.mark.parametrize("text,category", [
    # Older Python's shorter ImportError wording, without "from '...'".
    ("ImportError: cannot import name _C", "ext_not_built"),
    # NCCL lines pasted without their "NCCL WARN" prefix.
    ("include/shm.h:48 Error while creating shared memory segment nccl-shm-recv-1 (size 9637888)", "nccl"),
    ("Call to posix_fallocate failed : No space left on device", "nccl"),
    # Chinese compiler/loader output.
    ("fatal error: THC/THC.h: 没有那个文件或目录", "deprecated_torch_api_in_ext"),
    ("gcc: 致命错误：已杀死 signal terminated program cc1", "build_oom"),
    ("/bin/sh: 1: nvcc: 未找到命令", "nvcc_missing"),
    # Unquoted identifiers and typographic quotes as GCC prints them in some locales.
    ("error: \u2018AT_CHECK\u2019 was not declared in this scope", "deprecated_torch_api_in_ext"),
    ("error: AT_CHECK was not declared in this scope", "deprecated_torch_api_in_ext"),
    ("No module named MultiScaleDeformableAttention", "ext_not_built"),
    # detectron2 built without CUDA, both wordings.
    ("RuntimeError: Detectron2 is not compiled with GPU support!", "ext_built_without_cuda"),
    ("RuntimeError: Not compiled with GPU support", "ext_built_without_cuda"),
    # A user's lowercased paste of a mangled torch symbol.
    ("_c.cpython-36m-x86_64-linux-gnu.so: undefined symbol: _zn2at19undefinedtensorimpl10_singletone",
     "stale_build_abi"),
])
def test_phrasings(text, category):
    assert explain(text)[0].category == category
