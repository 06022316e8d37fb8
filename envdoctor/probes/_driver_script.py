"""Ask the NVIDIA driver libraries themselves, in a child interpreter.

Run as ``python -I -S _driver_script.py '<json>'`` by the driver probe, never
imported by envdoctor: loading a broken ``libcuda`` can hang or crash the
process that loads it, so the probe gives this script a timeout and keeps only
what it printed. The argument names the library files to try, in the order the
dynamic loader would (the probe resolves them under its filesystem root, so a
test machine never loads the real one):

    {"libcuda": ["/usr/lib/x86_64-linux-gnu/libcuda.so.1"], "nvml": [...]}

It prints one JSON line per library, as soon as that library has answered (so
what NVML said survives a libcuda that crashes): the file that really got
mapped (from /proc/self/maps), what ``nvmlInit_v2``/``cuInit`` returned and
what the library then told. Standard library only (ctypes, json).
"""
import ctypes
import json
import sys

NAME_BUFFER = 96


def mapped_path(fragment):
    """Where the loader really found the library (symlinks resolved), from /proc/self/maps."""
    try:
        with open("/proc/self/maps") as fh:
            for line in fh:
                parts = line.split(None, 5)
                if len(parts) == 6:
                    path = parts[5].strip()
                    if path.rsplit("/", 1)[-1].startswith(fragment):
                        return path
    except OSError:
        pass
    return None


def load(candidates, fragment):
    tried = []
    for path in candidates:
        try:
            lib = ctypes.CDLL(path)
        except OSError as exc:
            tried.append({"path": path, "error": str(exc)})
            continue
        return lib, {"requested": path, "path": mapped_path(fragment) or path, "tried": tried}
    return None, {"requested": None, "path": None, "tried": tried}


def function(lib, *names):
    for name in names:
        fn = getattr(lib, name, None)
        if fn is not None:
            fn.restype = ctypes.c_int
            return fn
    return None


def text(buffer):
    return buffer.value.decode("utf-8", "replace")


def cuda_error_name(lib, code):
    get_name = function(lib, "cuGetErrorName")
    if get_name is None:
        return None
    name = ctypes.c_char_p()
    if get_name(ctypes.c_int(code), ctypes.byref(name)) != 0 or not name.value:
        return None
    return name.value.decode("utf-8", "replace")


def cuda_devices(lib, count):
    devices = []
    get_device = function(lib, "cuDeviceGet")
    get_name = function(lib, "cuDeviceGetName")
    get_attribute = function(lib, "cuDeviceGetAttribute")
    total_mem = function(lib, "cuDeviceTotalMem_v2", "cuDeviceTotalMem")
    for index in range(count):
        item = {"index": index}
        device = ctypes.c_int()
        if get_device is None or get_device(ctypes.byref(device), index) != 0:
            devices.append(item)
            continue
        name = ctypes.create_string_buffer(NAME_BUFFER)
        if get_name is not None and get_name(name, NAME_BUFFER, device) == 0:
            item["name"] = text(name)
        major, minor = ctypes.c_int(), ctypes.c_int()
        # 75/76: CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR/MINOR
        if get_attribute is not None and get_attribute(ctypes.byref(major), 75, device) == 0 and \
                get_attribute(ctypes.byref(minor), 76, device) == 0:
            item["compute_cap"] = "%d.%d" % (major.value, minor.value)
        memory = ctypes.c_size_t()
        if total_mem is not None and total_mem(ctypes.byref(memory), device) == 0:
            item["memory_total_mib"] = memory.value // (1024 * 1024)
        devices.append(item)
    return devices


def ask_libcuda(candidates):
    lib, report = load(candidates, "libcuda.so")
    if lib is None:
        return report
    version = ctypes.c_int(0)
    get_version = function(lib, "cuDriverGetVersion")
    if get_version is not None:
        report["driver_version_code"] = get_version(ctypes.byref(version))
        report["cuda_driver_version"] = version.value
    init = function(lib, "cuInit")
    if init is None:
        return report
    code = init(ctypes.c_uint(0))
    report["cu_init"] = {"code": code, "name": cuda_error_name(lib, code)}
    if code == 0:
        count = ctypes.c_int(0)
        get_count = function(lib, "cuDeviceGetCount")
        if get_count is not None and get_count(ctypes.byref(count)) == 0:
            report["device_count"] = count.value
            report["devices"] = cuda_devices(lib, count.value)
    return report


class NvmlMemory(ctypes.Structure):
    _fields_ = [("total", ctypes.c_ulonglong), ("free", ctypes.c_ulonglong), ("used", ctypes.c_ulonglong)]


def nvml_error(lib, code):
    error_string = getattr(lib, "nvmlErrorString", None)
    if error_string is None:
        return None
    error_string.restype = ctypes.c_char_p
    value = error_string(ctypes.c_int(code))
    return value.decode("utf-8", "replace") if value else None


def nvml_device(lib, index):
    item = {"index": index}
    handle = ctypes.c_void_p()
    get_handle = function(lib, "nvmlDeviceGetHandleByIndex_v2", "nvmlDeviceGetHandleByIndex")
    if get_handle is None or get_handle(ctypes.c_uint(index), ctypes.byref(handle)) != 0:
        return item
    buffer = ctypes.create_string_buffer(NAME_BUFFER)
    for key, name in (("name", "nvmlDeviceGetName"), ("uuid", "nvmlDeviceGetUUID")):
        fn = function(lib, name)
        if fn is not None and fn(handle, buffer, ctypes.c_uint(NAME_BUFFER)) == 0:
            item[key] = text(buffer)
    memory = NvmlMemory()
    get_memory = function(lib, "nvmlDeviceGetMemoryInfo")
    if get_memory is not None and get_memory(handle, ctypes.byref(memory)) == 0:
        item["memory_total_mib"] = memory.total // (1024 * 1024)
        item["memory_used_mib"] = memory.used // (1024 * 1024)
    major, minor = ctypes.c_int(), ctypes.c_int()
    get_cc = function(lib, "nvmlDeviceGetCudaComputeCapability")
    if get_cc is not None and get_cc(handle, ctypes.byref(major), ctypes.byref(minor)) == 0:
        item["compute_cap"] = "%d.%d" % (major.value, minor.value)
    return item


def ask_nvml(candidates):
    lib, report = load(candidates, "libnvidia-ml.so")
    if lib is None:
        return report
    init = function(lib, "nvmlInit_v2", "nvmlInit")
    if init is None:
        return report
    code = init()
    report["init"] = {"code": code, "message": nvml_error(lib, code)}
    if code != 0:
        return report
    buffer = ctypes.create_string_buffer(NAME_BUFFER)
    get_driver = function(lib, "nvmlSystemGetDriverVersion")
    if get_driver is not None and get_driver(buffer, ctypes.c_uint(NAME_BUFFER)) == 0:
        report["driver_version"] = text(buffer)
    cuda = ctypes.c_int(0)
    get_cuda = function(lib, "nvmlSystemGetCudaDriverVersion_v2", "nvmlSystemGetCudaDriverVersion")
    if get_cuda is not None and get_cuda(ctypes.byref(cuda)) == 0:
        report["cuda_driver_version"] = cuda.value
    count = ctypes.c_uint(0)
    get_count = function(lib, "nvmlDeviceGetCount_v2", "nvmlDeviceGetCount")
    if get_count is not None and get_count(ctypes.byref(count)) == 0:
        report["device_count"] = count.value
        report["devices"] = [nvml_device(lib, index) for index in range(count.value)]
    shutdown = function(lib, "nvmlShutdown")
    if shutdown is not None:
        shutdown()
    return report


def main(argv):
    try:
        request = json.loads(argv[1]) if len(argv) > 1 else {}
    except ValueError:
        request = {}
    # NVML first: it does not create a CUDA context, and it names a version mismatch.
    for key, ask in (("nvml", ask_nvml), ("libcuda", ask_libcuda)):
        candidates = [str(p) for p in request.get(key) or []]
        if not candidates:
            continue
        try:
            report = ask(candidates)
        except Exception as exc:  # a library without an expected symbol, a ctypes surprise
            report = {"error": "%s: %s" % (type(exc).__name__, exc)}
        sys.stdout.write(json.dumps({key: report}, sort_keys=True) + "\n")
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
