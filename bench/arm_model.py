#!/usr/bin/env python3
"""NEON and SVE modelled per element from the cross-compiled code.

No machine here runs arm64, so docs/performance.md ("NEON and SVE: a model per
element") judges the Arm kernels by their inner loops as GCC compiles them:
instructions per element for every target, and per core

- NEON on Neoverse N1: each instruction's µops and pipes from LLVM's N1
  scheduling model (n1_uops below; the method is in docs/performance.md);
- SVE2_128 on Neoverse N2: llvm-mca's block reciprocal throughput
  (-mcpu=neoverse-n2), or instructions / 5 if more (N2 dispatches 5 a cycle),

each against the yardstick of the same target: the stream loop of the same
storage in place, the converting copy for f32 -> f16 / bf16, and the stream
loop of the source storage for f16 / bf16 -> f32. This builds the library and
bench/yardsticks.cc for aarch64 as CI does (ci/aarch64-toolchain.cmake,
Release), finds the loops in the disassembly and prints the tables of the
docs, so that their numbers can be checked against the code and recounted
after a kernel change.

    python3 bench/arm_model.py [--build-dir build/arm-model] [--no-build]

Needs the cross toolchain and arm64 libraries ci/arm64.sh installs (run it
once) and, for the N2 column, llvm-mca (Debian: apt-get install llvm-16).
"""

import argparse
import decimal
import os
import re
import shlex
import shutil
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OBJDUMP = "aarch64-linux-gnu-objdump"
STORAGES = {"f32": "F32", "f16": "F16", "bf16": "BF16"}
ELEMENT_BYTES = {"f32": 4, "f16": 2, "bf16": 2}
BRANCH = re.compile(r"(b\.\w+|b|cbnz|cbz|tbnz|tbz)\s+(?:.*,\s*)?([0-9a-f]+) <")
STORE = re.compile(r"(str|stur|stp|st1[bhw]|st2[hw]?)\b")


# ---- Building ----

def run(cmd, **kwargs):
    return subprocess.run(cmd, check=True, text=True, **kwargs)


def build(build_dir):
    """The library and the yardsticks' object file, for aarch64."""
    run(["cmake", "-S", ROOT, "-B", build_dir, "-G", "Ninja", "-DCMAKE_BUILD_TYPE=Release",
         "-DCMAKE_TOOLCHAIN_FILE=" + os.path.join(ROOT, "ci/aarch64-toolchain.cmake"),
         "-DROTARY_BUILD_TESTS=OFF", "-DROTARY_BUILD_BENCH=OFF"], stdout=subprocess.DEVNULL)
    run(["ninja", "-C", build_dir, "rotary"], stdout=subprocess.DEVNULL)
    # bench/yardsticks.cc with the flags of a kernel file (the yardsticks use
    # the kernels' conversions: they must be compiled alike).
    commands = run(["ninja", "-C", build_dir, "-t", "commands", "rotary"], capture_output=True).stdout
    kernel = next(line for line in commands.splitlines() if "dispatch/instances/rotate_neox_f32.cc" in line)
    args = shlex.split(kernel)
    flags = [a for a in args[1:] if a.startswith(("-D", "-I", "-O", "-f", "-std", "-m"))]
    obj = os.path.join(build_dir, "yardsticks.o")
    run([args[0], *flags, "-c", os.path.join(ROOT, "bench/yardsticks.cc"), "-o", obj])
    return os.path.join(build_dir, "librotary.so"), obj


# ---- Loops in the disassembly ----

def functions(path):
    """{demangled name: [(address, instruction)]} of an object's code."""
    text = run([OBJDUMP, "-d", "-C", "--no-show-raw-insn", path], capture_output=True).stdout
    out, body = {}, None
    for line in text.splitlines():
        m = re.match(r"^([0-9a-f]+) <(.*)>:$", line)
        if m:
            body = out.setdefault(m.group(2), [])
            continue
        parts = line.split("\t")
        if body is not None and line.startswith(" ") and len(parts) >= 2:
            instruction = "\t".join(parts[1:]).split("//")[0].strip()
            body.append((int(parts[0].strip().rstrip(":"), 16), instruction))
    return out


def inner_loops(body):
    """The innermost loops (a backward branch and what it jumps over) that store."""
    loops = []
    for address, instruction in body:
        m = BRANCH.match(instruction)
        if m and body[0][0] <= int(m.group(2), 16) <= address:
            start = int(m.group(2), 16)
            loop = [i.split("<")[0].strip() for a, i in body if start <= a <= address]
            if any(STORE.match(i) for i in loop):
                loops.append((start, address, loop))
    return [l for l in loops
            if not any(s >= l[0] and e <= l[1] and (s, e) != l[:2] for s, e, _ in loops)]


def narrowed(reg, loop):
    """Whether SVE register reg holds half a vector of 16-bit lanes: made by
    uzp1 of one register with itself (Highway's DemoteTo), so that its store
    is predicated to the lower half."""
    return any(re.match(r"uzp1\s+%s\.h, (z\d+)\.h, \1\.h$" % reg, x) for x in loop)


def stored_bytes(loop):
    """Bytes an iteration stores, SVE counted at 128 bits."""
    total = 0
    for i in loop:
        op = i.split()[0]
        if op in ("str", "stur", "stp"):
            m = re.search(r"\b([qdsh])\d+", i)
            if m:
                total += {"q": 16, "d": 8, "s": 4, "h": 2}[m.group(1)] * (2 if op == "stp" else 1)
        elif op == "st2":
            total += 32 if re.search(r"\.(4s|8h)", i) else 16
        elif op in ("st1w", "st1b", "st1h", "st2w", "st2h"):
            reg = re.search(r"\{\s*(z\d+)\.([hs])", i)
            half = op in ("st1h", "st2h") and (reg.group(2) == "s" or narrowed(reg.group(1), loop))
            total += (8 if half else 16) * (2 if op.startswith("st2") else 1)
    return total


# ---- Neoverse N1 (NEON) ----

def n1_uops(instruction):
    """{pipe group: µops} of one instruction on N1 (docs/performance.md, "Per core: method")."""
    op, rest = instruction.split()[0], instruction[len(instruction.split()[0]):]
    q_form = re.search(r"\.(4s|8h|16b)|\bq\d+", rest) is not None
    vector = rest.split(",")[0].strip().startswith("v")
    if op == "ld2":
        uops = {"L": 2, "V": 2}
    elif op == "st2":
        uops = {"L": 2, "V": 2} if q_form else {"L": 1, "V": 1}
    elif op == "ldp" and re.search(r"\bq\d+", rest):
        uops = {"L": 2}
    elif op in ("ldr", "ldur") and re.search(r"\b[qd]\d+", rest):
        uops = {"L": 1, "I": 1}
    elif op in ("str", "stur") and re.search(r"\bq\d+", rest):
        uops = {"L": 2, "V": 2}
    elif op in ("str", "stur") and re.search(r"\bd\d+", rest):
        uops = {"L": 1, "V": 1}
    elif op in ("fcvtl", "fcvtl2", "fcvtn", "fcvtn2"):
        uops = {"V0": 2}
    elif op in ("usra", "ssra", "ushr", "shl", "sqxtun", "sqxtun2", "uxtl", "uxtl2", "xtn", "xtn2", "ushll",
                "ushll2", "shrn", "shrn2"):
        uops = {"V1": 1}
    elif vector and op in ("fmul", "fmla", "fmls", "fadd", "fsub", "mov", "orr", "and", "bsl", "bif", "bit",
                           "uzp1", "uzp2", "zip1", "zip2", "trn1", "trn2", "rev64", "mvn", "not", "fneg", "cmeq",
                           "fcmeq", "eor", "movi", "dup", "ext", "add"):
        uops = {"V": 1}
    elif op in ("add", "sub", "cmp", "mov", "madd", "lsl", "subs", "adds"):
        uops = {"I": 1}
    elif BRANCH.match(instruction) or op in ("b", "ret"):
        uops = {"B": 1}
    else:
        uops = {"?": 1}
    if re.search(r"\], #|\], x|\]!", instruction):  # address writeback
        uops["I"] = uops.get("I", 0) + 1
    return uops


def n1(loop, elements):
    """(µops, cycles) per element: the busiest pipe group's cycles per iteration."""
    total = {}
    for i in loop:
        for group, n in n1_uops(i).items():
            total[group] = total.get(group, 0) + n
    v0, v1 = total.get("V0", 0), total.get("V1", 0)
    v = total.get("V", 0) + v0 + v1
    cycles = max(v0, v1, v / 2, total.get("L", 0) / 2, total.get("I", 0) / 3, total.get("B", 0), len(loop) / 4)
    return sum(total.values()) / elements, cycles / elements


# ---- Neoverse N2 (SVE2_128), by llvm-mca ----

def llvm_mca():
    """llvm-mca 16 (the version the docs' numbers come from); Debian 12's
    default llvm-mca (14) has no model of N2's SVE instructions."""
    for name in ("llvm-mca-16", "/usr/lib/llvm-16/bin/llvm-mca"):
        if shutil.which(name):
            return shutil.which(name)
    return None


def n2_cycles(mca, loop, elements):
    lines = []
    for i in loop:
        i = i.replace("{ ", "{").replace(" }", "}")
        m = re.match(r"(b\.\w+|b|cbnz|cbz|tbnz|tbz)\s+(.*)", i)
        if m:  # a branch to a label llvm-mca accepts
            operands = m.group(2).split(",")
            i = m.group(1) + " " + ",".join(operands[:-1] + ["."]) if len(operands) > 1 else m.group(1) + " ."
        lines.append(i)
    out = run([mca, "-mtriple=aarch64", "-mcpu=neoverse-n2", "-mattr=+sve2"], input="\n".join(lines) + "\n",
              capture_output=True).stdout
    throughput = float(re.search(r"Block RThroughput:\s*([0-9.]+)", out).group(1))
    return max(throughput, len(loop) / 5) / elements


# ---- The loops of the tables ----

def rotation_loops(funcs, target, pairing, src, dst):
    """(1 head, 4 heads) loops of RotateOperandRowEntry<pairing, src, dst>: the
    rotating loop with the most elements an iteration is the 4-head order's, the
    one with a quarter of them the 1-head order's."""
    pattern = re.compile(r"RotateOperandRowEntry<%d, rotary::N_%s::%sStorage, rotary::N_%s::%sStorage>\(" %
                         (pairing, target, STORAGES[src], target, STORAGES[dst]))
    loops = []
    for name, body in funcs.items():
        if pattern.search(name):
            for _, _, loop in inner_loops(body):
                ops = {i.split()[0] for i in loop}
                if "fmul" in ops and ops & {"fmla", "fmls", "fmad", "fmsb"}:
                    loops.append((loop, stored_bytes(loop) // ELEMENT_BYTES[dst]))
    if not loops:
        return None, None
    most = max(e for _, e in loops)
    four = next(l for l in loops if l[1] == most)
    one = next((l for l in loops if 4 * l[1] == most), None)
    return one, four


def yardstick_loops(funcs, target):
    """{name: (loop, elements)}: the main loop (most elements an iteration) of each yardstick."""
    def kind(function, loop):
        text = "\n".join(loop)
        f16 = re.search(r"\bfcvtn\b|\bfcvt\s+z\d+\.h", text) is not None
        bf16 = re.search(r"#0x40, lsl #16|#0x400000", text) is not None  # the quiet bit of a rounded NaN
        if "ConvertRange" in function:
            return "copy f32 → f16" if f16 else "copy f32 → bf16" if bf16 else None
        if "StreamBF16" in function:
            return "stream bf16" if bf16 else None
        if "StreamRange" in function:
            return "stream f16" if f16 else None if bf16 else "stream f32"
        return None
    best = {}
    for name, body in funcs.items():
        if "rotary_bench::N_%s::" % target not in name:
            continue
        for _, _, loop in inner_loops(body):
            k = kind(name, loop)
            if k is None:
                continue
            size = 4 if k == "stream f32" else 2
            elements = stored_bytes(loop) // size
            if k not in best or elements > best[k][1]:
                best[k] = (loop, elements)
    return best


# ---- Tables ----

def fixed(x):
    """Two decimals, halves up (0.975 -> 0.98: the float's own error taken off first)."""
    return str(decimal.Decimal("%.9f" % x).quantize(decimal.Decimal("0.01"), rounding=decimal.ROUND_HALF_UP))


def ratio(x, of):
    text = fixed(x / of) + "×"
    return "**%s**" % text if x / of > 1.3 + 1e-9 else text


KERNELS = [("f32", "f32"), ("f16", "f16"), ("bf16", "bf16"), ("f32", "f16"), ("f32", "bf16"), ("bf16", "f32"),
           ("f16", "f32")]


def yardstick_of(src, dst):
    if src == dst:
        return "stream " + src
    return "copy f32 → " + dst if src == "f32" else "stream " + src


def kernel_rows(funcs, target):
    for src, dst in KERNELS:
        for pairing, pairing_name in ((0, "neox"), (1, "interleaved")):
            one, four = rotation_loops(funcs, target, pairing, src, dst)
            for order, found in (("1 head", one), ("4 heads", four)):
                name = src if src == dst else "%s → %s" % (src, dst)
                yield name, pairing_name, order, found, yardstick_of(src, dst)


def instructions(loop, elements):
    return "%s (%d per %d)" % (fixed(len(loop) / elements), len(loop), elements)


def neon_table(funcs, yard):
    print("### NEON on Neoverse N1\n")
    print("| kernel | pairing | order | instructions / element | × yardstick | N1 µops / element | "
          "N1 cycles / element | × yardstick |")
    print("|---|---|---|---|---|---|---|---|")
    base = {}
    for name in ("stream f32", "stream f16", "stream bf16", "copy f32 → bf16", "copy f32 → f16"):
        loop, elements = yard["NEON"][name]
        uops, cycles = n1(loop, elements)
        base[name] = (len(loop) / elements, cycles)
        print("| %s | | | %s | | %s | %s | |" % (name, instructions(loop, elements), fixed(uops), fixed(cycles)))
    for name, pairing, order, found, against in kernel_rows(funcs, "NEON"):
        if found is None:
            print("| %s | %s | %s | (loop not found) | | | | |" % (name, pairing, order))
            continue
        loop, elements = found
        uops, cycles = n1(loop, elements)
        print("| %s | %s | %s | %s | %s | %s | %s | %s |" % (
            name, pairing, order, instructions(loop, elements), ratio(len(loop) / elements, base[against][0]),
            fixed(uops), fixed(cycles), ratio(cycles, base[against][1])))
    print()


def sve_table(funcs, yard, mca):
    print("### SVE at 128 bits on Neoverse N2\n")
    print("| kernel | pairing | order | SVE2_128 instructions / element | × yardstick | N2 cycles / element | "
          "× yardstick | SVE instructions / element | × yardstick |")
    print("|---|---|---|---|---|---|---|---|---|")
    cycles_of = (lambda loop, elements: n2_cycles(mca, loop, elements)) if mca else (lambda loop, elements: None)
    show = lambda c: fixed(c) if c is not None else "(no llvm-mca)"
    base = {}
    for name in ("stream f32", "stream f16", "stream bf16", "copy f32 → f16", "copy f32 → bf16"):
        loop, elements = yard["SVE2_128"][name]
        vla_loop, vla_elements = yard["SVE"][name]
        cycles = cycles_of(loop, elements)
        base[name] = (len(loop) / elements, cycles, len(vla_loop) / vla_elements)
        print("| %s | | | %s | | %s | | %s | |" % (name, instructions(loop, elements), show(cycles),
                                                  instructions(vla_loop, vla_elements)))
    vla = {(n, p, o): f for n, p, o, f, _ in kernel_rows(funcs, "SVE")}
    for name, pairing, order, found, against in kernel_rows(funcs, "SVE2_128"):
        if found is None or vla[(name, pairing, order)] is None:
            print("| %s | %s | %s | (loop not found) | | | | | |" % (name, pairing, order))
            continue
        loop, elements = found
        vla_loop, vla_elements = vla[(name, pairing, order)]
        cycles = cycles_of(loop, elements)
        print("| %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
            name, pairing, order, instructions(loop, elements), ratio(len(loop) / elements, base[against][0]),
            show(cycles), ratio(cycles, base[against][1]) if cycles is not None else "",
            instructions(vla_loop, vla_elements), ratio(len(vla_loop) / vla_elements, base[against][2])))
    print()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--build-dir", default=os.path.join(ROOT, "build/arm-model"))
    parser.add_argument("--no-build", action="store_true", help="use what --build-dir holds")
    args = parser.parse_args()
    if not shutil.which(OBJDUMP) or not shutil.which("aarch64-linux-gnu-g++"):
        sys.exit("arm_model.py: no aarch64 cross toolchain; `bash ci/arm64.sh` installs it")
    library = os.path.join(args.build_dir, "librotary.so")
    yardsticks = os.path.join(args.build_dir, "yardsticks.o")
    if not args.no_build:
        library, yardsticks = build(args.build_dir)
    mca = llvm_mca()
    if mca is None:
        print("(llvm-mca 16 not found: the N2 cycles are left out; Debian: apt-get install llvm-16)\n")
    funcs = functions(library)
    yard_funcs = functions(yardsticks)
    yard = {t: yardstick_loops(yard_funcs, t) for t in ("NEON", "SVE2_128", "SVE")}
    neon_table(funcs, yard)
    sve_table(funcs, yard, mca)


if __name__ == "__main__":
    main()
