"""Shared helpers of the rotary Python tests: a float64 numpy oracle, bf16 rounding, the
error bounds, and the exit status that tells ctest a run skipped everything."""
import os

import numpy as np
import pytest

import rotary

# The f32 error bounds of tests/error_bounds.h, per unit of max|x| * attention factor
# (u = 2^-24): the full table's rows within 5 u; the compact and on-the-fly rows within
# 11 u; inverse(apply(x)) - x within apply's error plus the inverse's on inputs up to
# sqrt(2) max|x|. Measured: 2.2-2.7 u full, 3.1-3.4 u synthesized.
F32_UNIT = 2.0**-24
FULL_TABLE_BOUND = 5 * F32_UNIT
SYNTHESIZED_BOUND = 11 * F32_UNIT
ROUND_TRIP_BOUND = (1 + 2**0.5) * FULL_TABLE_BOUND


def reference(x, positions, inv_freq, pairing="neox", attention_factor=1.0, inverse=False):
    """RoPE in float64: x [batch, seq, heads, head_dim], positions [batch, seq], inv_freq [rotary_dim / 2]."""
    x = np.asarray(x, dtype=np.float64)
    angle = np.asarray(positions, dtype=np.float64)[..., None] * np.asarray(inv_freq, dtype=np.float64)
    cos = attention_factor * np.cos(angle)[:, :, None, :]
    sin = attention_factor * np.sin(angle)[:, :, None, :]
    if inverse:
        cos, sin = cos / attention_factor**2, -sin / attention_factor**2
    return rotate_pairs(x, cos, sin, pairing)


def rotate_pairs(x, cos, sin, pairing):
    """x with pair i of the pairing rotated by (cos[..., i], sin[..., i]); the components after
    2 * pairs pass through."""
    pairs = cos.shape[-1]
    out = x.copy()
    if pairing == "neox":
        a, b = x[..., :pairs], x[..., pairs : 2 * pairs]
        out[..., :pairs] = a * cos - b * sin
        out[..., pairs : 2 * pairs] = a * sin + b * cos
    else:
        a, b = x[..., 0 : 2 * pairs : 2], x[..., 1 : 2 * pairs : 2]
        out[..., 0 : 2 * pairs : 2] = a * cos - b * sin
        out[..., 1 : 2 * pairs : 2] = a * sin + b * cos
    return out


def default_inv_freq(rotary_dim, base=10000.0):
    return base ** (-np.arange(0, rotary_dim, 2, dtype=np.float64) / rotary_dim)


def to_bf16(x):
    """float32 -> bf16 bit patterns (uint16), rounded to nearest even."""
    bits = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32).astype(np.uint64)
    rounded = (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16
    return rounded.astype(np.uint16)


def from_bf16(bits):
    return (np.asarray(bits, dtype=np.uint16).astype(np.uint32) << 16).view(np.float32)


def pytest_sessionfinish(session, exitstatus):
    """With ROTARY_ALL_SKIPPED_EXIT set (ctest does, with SKIP_RETURN_CODE), a run in which
    tests were skipped and none ran exits with that status, so a missing optional dependency
    (torch) shows as skipped, not passed."""
    code = os.environ.get("ROTARY_ALL_SKIPPED_EXIT")
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    # pytest exits 5 (no tests collected) when a module-level skip leaves nothing to run.
    if not code or exitstatus not in (pytest.ExitCode.OK, pytest.ExitCode.NO_TESTS_COLLECTED) or reporter is None:
        return
    ran = sum(len(reporter.stats.get(outcome, [])) for outcome in ("passed", "failed", "error", "xpassed"))
    if ran == 0 and reporter.stats.get("skipped"):
        session.exitstatus = int(code)


@pytest.fixture
def rng():
    return np.random.default_rng(20240611)


@pytest.fixture(autouse=True)
def default_target():
    """Every test starts and ends on the default kernel target."""
    rotary.set_target("auto")
    yield
    rotary.set_target("auto")
