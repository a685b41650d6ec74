"""The compiled CPU ops: build `csrc/*.c` (the selective scan, the causal depthwise conv, max pooling for
training) into one library
on first use, load it with ctypes.

Why plain C + gcc + ctypes (and not a torch C++ extension or numba): the source has no torch
headers, so it compiles in 0.6-0.8 s (a torch extension takes a minute), and it needs no
package beyond a C compiler. numba, tried on the same forward (prange over rows, fastmath,
B=4 D=256 N=16 L=2048, 1 thread): 3.2 s to compile the forward alone and 0.15 s per call,
against 0.018 s for this kernel, whose vector expf over the N states numba did not produce.
If there is no compiler, or the build or load fails, `load()` returns None, the scan falls
back to the pure-PyTorch loop, and `status()` says why.

The shared object goes to a per-user cache, named by a hash of everything that affects the
binary (source, flags, compiler version, CPU flags for -march=native). It is compiled under a
temporary name and renamed into place, so concurrent processes never load a half-written file;
the second process to finish simply replaces an identical file.
"""
from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import torch

CSRC = Path(__file__).resolve().parent / "csrc"
SOURCES = (CSRC / "selective_scan.c", CSRC / "causal_conv1d.c", CSRC / "max_pool1d.c")
HEADERS = (CSRC / "fast_math.h",)

# -ffast-math lets GCC call glibc's vector expf/log1pf (libmvec) from `#pragma omp simd` loops;
# the tests check the result still agrees with the fp64 reference to 1e-5. It is given only
# when compiling, never when linking: linking with it adds crtfastmath.o, which would switch
# the whole process (torch included) to flush-denormals-to-zero when the library loads.
# On x86-64, -mprefer-vector-width=256: GCC's tuning for some CPUs (AMD Zen 1, -march=znver1) prefers
# 128-bit vectors; the scan's exponentials then take twice the instructions (measured on a Zen 1 EPYC:
# scan 13 % faster with 256). CPUs whose tuning already prefers 256 bits are unchanged; on AVX-512 ones
# GCC keeps 256 by default too (512-bit code can lower the clock).
VECTOR_FLAGS = ("-mprefer-vector-width=256",) if platform.machine().lower() in ("x86_64", "amd64") else ()
COMPILE_FLAGS = ("-O3", "-march=native", *VECTOR_FLAGS, "-ffast-math", "-fopenmp", "-fPIC", "-std=c11")
LINK_FLAGS = ("-shared", "-fopenmp")
BUILD_TIMEOUT_S = 120


class KernelBuildError(RuntimeError):
    """The C kernel could not be compiled or loaded (the torch loop is used instead)."""


def cache_dir() -> Path:
    """Where built kernels live: $EEGMAMBA_CACHE_DIR/kernels, else ~/.cache/eegmamba/kernels."""
    root = os.environ.get("EEGMAMBA_CACHE_DIR")
    if root:
        return Path(root).expanduser() / "kernels"
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg).expanduser() / "eegmamba" / "kernels"


def find_compiler() -> str | None:
    return os.environ.get("CC") or shutil.which("gcc") or shutil.which("cc")


def _cpu_flags() -> str:
    """-march=native binaries are CPU-specific: a shared home directory must not mix them."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                return line
    except OSError:
        pass
    return platform.processor()


def fingerprint(compiler: str) -> str:
    try:
        version = subprocess.run([compiler, "--version"], capture_output=True, text=True,
                                 timeout=30).stdout
    except (OSError, subprocess.SubprocessError) as err:
        raise KernelBuildError(f"cannot run the C compiler {compiler!r}: {err}") from err
    h = hashlib.sha256()
    for part in (*(f.read_bytes() for f in SOURCES + HEADERS), " ".join(COMPILE_FLAGS + LINK_FLAGS).encode(),
                 version.encode(), _cpu_flags().encode(), platform.machine().encode()):
        h.update(part)
        h.update(b"\0")
    return h.hexdigest()[:20]


def build(directory: Path | None = None) -> tuple[Path, bool]:
    """Return (path of the shared object, whether this call compiled it)."""
    compiler = find_compiler()
    if compiler is None:
        raise KernelBuildError("no C compiler found (set CC, or install gcc)")
    directory = Path(directory) if directory is not None else cache_dir()
    target = directory / f"selective_scan_{fingerprint(compiler)}.so"
    if target.exists():
        return target, False
    directory.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=directory, prefix=".build-") as tmp:
        objects = [Path(tmp) / f"{source.stem}.o" for source in SOURCES]
        for source, obj in zip(SOURCES, objects):
            _run([compiler, *COMPILE_FLAGS, "-c", str(source), "-o", str(obj)])
        lib = Path(tmp) / "ops.so"
        _run([compiler, *LINK_FLAGS, *map(str, objects), "-o", str(lib), "-lm"])
        os.replace(lib, target)  # atomic on POSIX: readers see no file or the whole file
    return target, True


def _run(cmd: list[str]) -> None:
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=BUILD_TIMEOUT_S)
    except (OSError, subprocess.SubprocessError) as err:
        raise KernelBuildError(f"{' '.join(cmd)}: {err}") from err
    if done.returncode != 0:
        raise KernelBuildError(f"{' '.join(cmd)} failed:\n{done.stderr.strip()[-2000:]}")


_STATUS: dict = {"available": False, "reason": "not loaded yet"}


@functools.lru_cache(maxsize=1)
def load() -> ctypes.CDLL | None:
    """The loaded kernel library, or None (reason in `status()`). Tried once per process."""
    start = time.perf_counter()
    try:
        path, compiled = build()
        lib = ctypes.CDLL(str(path))
        _declare(lib)
    except (KernelBuildError, OSError, AttributeError) as err:
        _STATUS.update(available=False, reason=str(err))
        return None
    _STATUS.update(available=True, reason="", path=str(path), compiled_now=compiled,
                   load_seconds=round(time.perf_counter() - start, 3),
                   flags=" ".join(COMPILE_FLAGS))
    return lib


def status() -> dict:
    """For the environment report: whether the kernel is in use, and if not, why."""
    load()
    return dict(_STATUS)


def _declare(lib: ctypes.CDLL) -> None:
    p, i64, i32 = ctypes.c_void_p, ctypes.c_int64, ctypes.c_int
    lib.ss_fwd_f32.argtypes = [p] * 11 + [i64] * 4 + [i32, i32]
    lib.ss_fwd_f32.restype = i32
    lib.ss_bwd_f32.argtypes = [p] * 19 + [i64] * 4 + [i32, i64, i32]
    lib.ss_bwd_f32.restype = i32
    lib.cc_fwd_f32.argtypes = [p] * 5 + [i64] * 4 + [i32, i32]
    lib.cc_fwd_f32.restype = i32
    lib.cc_bwd_f32.argtypes = [p] * 8 + [i64] * 4 + [i32, i32]
    lib.cc_bwd_f32.restype = i32
    lib.mp_fwd_f32.argtypes = [p] * 3 + [i64] * 6 + [i32]
    lib.mp_fwd_f32.restype = i32
    lib.mp_bwd_f32.argtypes = [p] * 3 + [i64] * 3 + [i32]
    lib.mp_bwd_f32.restype = i32


def _ptr(t: torch.Tensor | None) -> int | None:
    return None if t is None else t.data_ptr()


def _check(t: torch.Tensor | None, name: str) -> None:
    if t is not None and not (t.dtype == torch.float32 and t.is_contiguous() and t.device.type == "cpu"):
        raise ValueError(f"kernel input {name} must be a contiguous float32 CPU tensor")


def _check_rev_len(rev_len: torch.Tensor | None, batch: int, length: int) -> None:
    """rev_len (B,) int64 in [0, L]: the kernels read and write within each row by it."""
    if rev_len is None:
        return
    if not (rev_len.dtype == torch.int64 and rev_len.is_contiguous() and rev_len.device.type == "cpu"
            and tuple(rev_len.shape) == (batch,)):
        raise ValueError(f"kernel input rev_len must be a contiguous int64 CPU tensor of shape ({batch},)")
    if batch and (int(rev_len.min()) < 0 or int(rev_len.max()) > length):
        raise ValueError(f"kernel input rev_len must lie in [0, {length}]")


def scan_forward(u, delta, A, Bt, Ct, D, z, delta_bias, softplus: bool, want_last_state: bool,
                 rev_len=None):
    """out (B, D, L) and last state (B, D, N) or None. Inputs: see csrc/selective_scan.c (rev_len: scan
    each row reversed within that many samples; Bt, Ct then in scan order)."""
    lib = load()
    for t, name in ((u, "u"), (delta, "delta"), (A, "A"), (Bt, "Bt"), (Ct, "Ct"), (D, "D"),
                    (z, "z"), (delta_bias, "delta_bias")):
        _check(t, name)
    batch, dim, length = u.shape
    _check_rev_len(rev_len, batch, length)
    nstate = A.shape[1]
    out = torch.empty_like(u)  # (B, D, L)
    last = u.new_empty(batch, dim, nstate) if want_last_state else None  # (B, D, N)
    rc = lib.ss_fwd_f32(_ptr(u), _ptr(delta), _ptr(A), _ptr(Bt), _ptr(Ct), _ptr(D), _ptr(z),
                        _ptr(delta_bias), _ptr(rev_len), _ptr(out), _ptr(last), batch, dim, length, nstate,
                        int(softplus), torch.get_num_threads())
    if rc != 0:
        raise MemoryError("selective scan kernel: out of memory for its per-thread buffers")
    return out, last


def scan_backward(u, delta, A, Bt, Ct, D, z, delta_bias, dout, dlast, softplus: bool, rev_len=None):
    """Gradients for every input: du, ddelta, dA, dBt (B, L, N), dCt, dD, dz, ddelta_bias (dBt, dCt in
    scan order, as Bt and Ct came).

    dD / ddelta_bias are returned even when D / delta_bias were None (the caller drops them).
    """
    lib = load()
    batch, dim, length = u.shape
    _check_rev_len(rev_len, batch, length)
    nstate = A.shape[1]
    threads = torch.get_num_threads()
    # About 8 (b, channel block) tasks per thread, so that threads stay busy for batch 1 and a
    # preempted thread's work can be taken over; blocks of >= 16 channels keep the per-block
    # dB/dC partial sums (blocks x B x L x N) below 1/16 of the row work.
    blocks = max(1, min(-(-8 * threads // batch), dim // 16))
    du, ddelta = torch.empty_like(u), torch.empty_like(u)  # (B, D, L)
    dz = torch.empty_like(u) if z is not None else None
    dA_row = u.new_empty(batch, dim, nstate)  # (B, D, N), summed over B below
    dB_part = u.new_empty(blocks, batch, length, nstate)  # (P, B, L, N), summed over P below
    dC_part = u.new_empty(blocks, batch, length, nstate)
    dD_row, dbias_row = u.new_empty(batch, dim), u.new_empty(batch, dim)  # (B, D)
    rc = lib.ss_bwd_f32(_ptr(u), _ptr(delta), _ptr(A), _ptr(Bt), _ptr(Ct), _ptr(D), _ptr(z),
                        _ptr(delta_bias), _ptr(rev_len), _ptr(dout), _ptr(dlast), _ptr(du), _ptr(ddelta),
                        _ptr(dz), _ptr(dA_row), _ptr(dB_part), _ptr(dC_part), _ptr(dD_row),
                        _ptr(dbias_row), batch, dim, length, nstate, int(softplus), blocks,
                        threads)
    if rc != 0:
        raise MemoryError("selective scan kernel: out of memory for its per-thread buffers")
    return (du, ddelta, dA_row.sum(0), dB_part.sum(0), dC_part.sum(0), dD_row.sum(0), dz,
            dbias_row.sum(0))


def conv_forward(x, weight, bias, silu: bool, rev_len=None):
    """Causal depthwise conv (+ SiLU): x (B, D, L), weight (D, W), bias (D,) or None -> (B, D, L);
    with rev_len (B,), each row convolved reversed within that many samples (csrc/causal_conv1d.c)."""
    lib = load()
    for t, name in ((x, "x"), (weight, "weight"), (bias, "bias")):
        _check(t, name)
    batch, dim, length = x.shape
    _check_rev_len(rev_len, batch, length)
    out = torch.empty_like(x)
    rc = lib.cc_fwd_f32(_ptr(x), _ptr(weight), _ptr(bias), _ptr(rev_len), _ptr(out), batch, dim, length,
                        weight.shape[1], int(silu), torch.get_num_threads())
    if rc != 0:
        raise MemoryError("causal conv kernel: out of memory for its per-thread buffers")
    return out


def conv_backward(x, weight, bias, dout, silu: bool, rev_len=None):
    """dx (B, D, L), dweight (D, W), dbias (D,) (returned even without a bias; the caller drops it)."""
    lib = load()
    batch, dim, length = x.shape
    width = weight.shape[1]
    dx = torch.empty_like(x)
    dw_row, db_row = x.new_empty(batch, dim, width), x.new_empty(batch, dim)  # summed over B below
    _check_rev_len(rev_len, batch, length)
    rc = lib.cc_bwd_f32(_ptr(x), _ptr(weight), _ptr(bias), _ptr(rev_len), _ptr(dout), _ptr(dx), _ptr(dw_row),
                        _ptr(db_row),
                        batch, dim, length, width, int(silu), torch.get_num_threads())
    if rc != 0:
        raise MemoryError("causal conv kernel: out of memory for its per-thread buffers")
    return dx, dw_row.sum(0), db_row.sum(0)


def pool_forward(x, kernel: int, stride: int, padding: int):
    """out (R, L_out) and int64 indices (R, L_out) of 1-D max pooling over the rows of x (R, L)."""
    lib = load()
    _check(x, "x")
    rows, length = x.shape
    out_len = (length + 2 * padding - kernel) // stride + 1
    out = x.new_empty(rows, out_len)
    idx = torch.empty(rows, out_len, dtype=torch.int64)
    lib.mp_fwd_f32(_ptr(x), _ptr(out), _ptr(idx), rows, length, out_len, kernel, stride, padding,
                   torch.get_num_threads())
    return out, idx


def pool_backward(dout, idx, length: int):
    """dx (R, L): each output's gradient added at the input position it took its maximum from."""
    lib = load()
    _check(dout, "dout")
    rows, out_len = dout.shape
    dx = dout.new_empty(rows, length)
    lib.mp_bwd_f32(_ptr(dout), _ptr(idx), _ptr(dx), rows, length, out_len, torch.get_num_threads())
    return dx
