"""Ranking by position and causality, honest alternatives, context that is precise, fixes from the log's facts."""
from __future__ import annotations

from envdoctor.explain import analyse, explain, from_text

DEPRECATION = ("x.cu:64:3: warning: 'at::DeprecatedTypeProperties& at::Tensor::type() const' is deprecated: "
               "Tensor.type() is deprecated. [-Wdeprecated-declarations]")


def _cats(text, machine=None):
    return [e.category for e in explain(text, machine)]


def test_a_deprecation_warning_never_outranks_the_real_error_after_it():
    log = "\n".join([DEPRECATION, "   64 |   AT_DISPATCH_FLOATING_TYPES(value.type(), ...", "      |   ^~~~",
                     "[5/9] c++ -c b.cpp", "/usr/bin/ld: cannot find -lcudart", "collect2: error: ld returned 1"])
    assert _cats(log) == ["link_cudart_not_found"]


def test_a_warning_only_match_ranks_after_any_error():
    # torch's nvcc-too-old wording in a warning must not beat the error that follows.
    log = ("UserWarning: Error checking compiler version for cl: [WinError 2] ... no kernel image is available "
           "for execution on the device\nRuntimeError: CUDA error: invalid device ordinal")
    assert _cats(log)[0] == "gpu_selection"


def test_the_first_real_error_comes_before_later_ones():
    log = "OSError: CUDA_HOME environment variable is not set.\n/usr/bin/ld: cannot find -lcudart\n"
    assert _cats(log)[:2] == ["cuda_home_unset", "link_cudart_not_found"]
    swapped = "/usr/bin/ld: cannot find -lcudart\nfatal error: THC/THC.h: No such file or directory\n"
    # A cause on an error line outranks a symptom (the linker error) even when the symptom comes first.
    assert _cats(swapped)[0] == "deprecated_torch_api_in_ext"


def test_a_cause_ranks_before_the_consequence_it_explains():
    log = ("UserWarning: NVIDIA GeForce RTX 3090 with CUDA capability sm_86 is not compatible with the current "
           "PyTorch installation.\nRuntimeError: CUDA error: no kernel image is available for execution on the device")
    assert _cats(log)[:2] == ["torch_arch_unsupported", "no_kernel_image_for_gpu"]
    malformed = ("No CUDA runtime is found, using CUDA_HOME=':/usr/local/cuda-9.0:/usr/local/cuda-8.0'\n"
                 "compiler_compat/ld: cannot find -lcudart")
    assert _cats(malformed)[0] == "cuda_home_misconfigured"


def test_consequence_only_logs_say_what_to_look_for():
    result = analyse(from_text("  ninja: build stopped: subcommand failed.\nRuntimeError: Error compiling objects for "
                               "extension\n"))
    assert result.explanations == []
    assert "first line with 'error:'" in result.hint and "Line 1" in result.hint
    assert analyse(from_text("collect2: error: ld returned 1 exit status")).hint.count("linker") == 1
    assert analyse(from_text("all fine")).hint is None


def test_ambiguous_driver_message_gives_ranked_alternatives_with_honest_confidence():
    found = explain("CUDA driver version is insufficient for CUDA runtime version")
    assert [(e.category, e.confidence) for e in found] == [("driver_too_old", "medium"),
                                                            ("container_gpu_not_exposed", "low")]
    assert found[1].alternative_to == "driver_too_old" and found[1].line_no == found[0].line_no
    in_docker = explain("$ docker run -it img python t.py\n" + "CUDA driver version is insufficient for CUDA runtime "
                        "version")
    assert [e.category for e in in_docker] == ["container_gpu_not_exposed", "driver_too_old"]


def test_machine_facts_choose_between_the_readings():
    text = "CUDA driver version is insufficient for CUDA runtime version"
    inside = {"host.in_container": True, "driver.present": False}
    assert _cats(text, inside)[0] == "container_gpu_not_exposed"
    host = {"host.in_container": False, "driver.present": True, "driver.version": "470.82.01"}
    assert _cats(text, host) == ["driver_too_old"]
    smi = "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver."
    assert _cats(smi, host) == ["driver_not_loaded"]
    assert _cats(smi, inside)[0] == "container_gpu_not_exposed"


def test_docker_context_is_a_word_not_a_substring():
    text = "CUDA driver version is insufficient for CUDA runtime version"
    assert _cats("Successfully installed docker-pycreds-0.4.0 wandb\n" + text)[0] == "driver_too_old"
    assert _cats("pip install dockerfile-parse\n" + text)[0] == "driver_too_old"
    assert _cats("[root@24c96d985c30 /]# nvidia-smi\n" + text)[0] == "container_gpu_not_exposed"


def test_cuda_visible_devices_counts_only_when_it_can_hide_gpus():
    text = "RuntimeError: CUDA error: no CUDA-capable device is detected"
    assert _cats("CUDA_VISIBLE_DEVICES=${GPU_ID} ./tools/demo.py\n" + text)[0] == "gpu_selection"
    assert _cats("export CUDA_VISIBLE_DEVICES=\n" + text)[0] == "gpu_selection"
    assert _cats("CUDA_VISIBLE_DEVICES=0 python train.py\n" + text)[0] == "driver_not_loaded"
    assert _cats("# see CUDA_VISIBLE_DEVICES in the docs\n" + text)[0] == "driver_not_loaded"
    assert _cats(text, {"env.vars": {"CUDA_VISIBLE_DEVICES": ""}})[0] == "gpu_selection"


def test_missing_runtime_library_of_another_cuda_major_points_at_a_prebuilt_package():
    lib = "ImportError: libcudart.so.10.1: cannot open shared object file: No such file or directory"
    assert _cats(lib)[:2] == ["missing_runtime_lib", "prebuilt_wheel_mismatch"]
    assert _cats(lib + "\nmy system: ubuntu20.04 + cuda12.1")[0] == "prebuilt_wheel_mismatch"
    assert _cats(lib, {"nvcc.version": "12.4.131"})[0] == "prebuilt_wheel_mismatch"


def test_fix_uses_the_arch_in_the_error_and_the_nvcc_that_ran():
    found = explain("nvcc fatal   : Unsupported gpu architecture 'compute_61'\n"
                    "error: command '/usr/bin/nvcc' failed with exit status 1\n"
                    "Cuda compilation tools, release 13.0, V13.0.48")
    main = found[0]
    assert main.category == "arch_unsupported_by_nvcc"
    assert "6.1" in main.diagnosis and "12.9" in main.diagnosis + main.fix  # CUDA 13 dropped sm_61
    assert "/usr/bin/nvcc" in main.fix and "distribution" in main.fix
    assert "8.0" not in main.fix
    old = explain("-- CUDA detected: 11.0\nnvcc fatal   : Unsupported gpu architecture 'compute_86'")[0]
    assert "11.1" in old.diagnosis and 'TORCH_CUDA_ARCH_LIST="8.0"' in old.fix  # what nvcc 11.0 can build


def test_fix_picks_the_wheel_for_the_driver_in_the_log():
    log = ("| NVIDIA-SMI 475.14       Driver Version: 475.14       CUDA Version: 11.4     |\n"
           "AssertionError: Torch not compiled with CUDA enabled")
    fix = explain(log)[0].fix
    assert "cu118" in fix and "cu128" not in fix
    new_gpu = explain("NVIDIA GeForce RTX 5090 with CUDA capability sm_120 is not compatible with the current "
                      "PyTorch installation.")[0].fix
    assert "sm_120" in new_gpu and "cu12" in new_gpu or "cu13" in new_gpu


def test_fix_uses_the_ops_path_in_the_log():
    log = ("  File \"/content/grit/models/ops/functions/ms_deform_attn_func.py\", line 18, in <module>\n"
           "    import MultiScaleDeformableAttention as MSDA\n"
           "ModuleNotFoundError: No module named 'MultiScaleDeformableAttention'")
    fix = explain(log)[0].fix
    assert "cd /content/grit/models/ops && sh make.sh" in fix and "mask2former" not in fix
    assert "mask2former/modeling/pixel_decoder/ops" in explain("No module named 'MultiScaleDeformableAttention'")[0].fix


def test_detectron2_without_gpu_support_fix_names_the_rebuild():
    fix = explain("RuntimeError: Detectron2 is not compiled with GPU support!")[0].fix
    assert "FORCE_CUDA=1" in fix and "CUDA_HOME" in fix and "TORCH_CUDA_ARCH_LIST" in fix
    with_gpu = explain("GPU 0: NVIDIA GeForce RTX 3060\nRuntimeError: Not compiled with GPU support (ROIAlign_forward "
                       "at /d2/detectron2/layers/csrc/ROIAlign/ROIAlign.h:73)")[0].fix
    assert 'TORCH_CUDA_ARCH_LIST="8.6"' in with_gpu


def test_libstdcxx_fix_names_the_system_library_picked_for_a_conda_binary():
    log = ("ImportError: /usr/lib/x86_64-linux-gnu/libstdc++.so.6: version `GLIBCXX_3.4.29' not found (required by "
           "/opt/conda/envs/py38/lib/python3.8/site-packages/scipy/_ckdtree.so)")
    fix = explain(log)[0].fix
    assert "/usr/lib/x86_64-linux-gnu" in fix and "$CONDA_PREFIX/lib" in fix


def test_nccl_socket_and_shared_memory_failures_get_different_fixes():
    shm = explain("NCCL WARN Call to posix_fallocate failed : No space left on device")[0]
    net = explain("misc/socket.cc:456 NCCL WARN Net : Call to connect returned Connection refused")[0]
    assert shm.category == net.category == "nccl"
    assert "--shm-size" in shm.fix and "NCCL_SOCKET_IFNAME" in net.fix and "--shm-size" not in net.fix


def test_users_words_without_version_numbers():
    talk = "nvidia-smi shows a different CUDA than nvcc --version, which one is installed?"
    assert _cats(talk) == ["smi_cuda_version_confusion"]
    assert _cats("nvcc --version\nCuda compilation tools, release 12.0, V12.0.140\n/usr/local/cuda/bin/nvcc -V\n"
                 "Cuda compilation tools, release 12.8, V12.8.93") == ["multiple_cuda_toolkits"]
