#!/usr/bin/env python3
"""The polynomial coefficients of dispatch/cos_sin_double.h, recomputed.

sin x = x + x^3 P(x^2) and cos x = 1 - x^2/2 + x^4 Q(x^2) on |x| <= pi/4, P and Q
of degree 5: weighted least squares on 80 Chebyshev nodes (near minimax), in
60-digit decimal arithmetic, rounded to double. Prints each coefficient and the
largest relative error of the rounded polynomial (exact arithmetic), in units of
2^-53. Standard library only.
"""
import math
from decimal import Decimal as D, getcontext

getcontext().prec = 60
PI = D("3.14159265358979323846264338327950288419716939937510582097494")
X = PI / 4


def series(x, first, start):
    s, t, n = D(0), first, start
    while abs(t) > D(10) ** -58:
        s += t
        n += 2
        t = -t * x * x / ((n - 1) * n)
    return s


def dsin(x):
    return series(x, x, 1)


def dcos(x):
    return series(x, D(1), 0)


def solve(a, b):
    n = len(a)
    m = [row[:] + [bb] for row, bb in zip(a, b)]
    for i in range(n):
        p = max(range(i, n), key=lambda r: abs(m[r][i]))
        m[i], m[p] = m[p], m[i]
        for r in range(n):
            if r != i:
                f = m[r][i] / m[i][i]
                m[r] = [u - f * v for u, v in zip(m[r], m[i])]
    return [m[i][n] / m[i][i] for i in range(n)]


def fit(kind, count=6, nodes=80):
    rows, rhs = [], []
    for k in range(nodes):
        x = X * D(math.cos(math.pi * (2 * k + 1) / (4 * nodes)))
        z = x * x
        if kind == "sin":
            w = x**3 / dsin(x)
            target = (dsin(x) - x) / x**3
        else:
            w = x**4 / dcos(x)
            target = (dcos(x) - 1 + z / 2) / x**4
        rows.append([w * z**j for j in range(count)])
        rhs.append(w * target)
    a = [[sum(r[i] * r[j] for r in rows) for j in range(count)] for i in range(count)]
    b = [sum(r[i] * y for r, y in zip(rows, rhs)) for i in range(count)]
    return [float(c) for c in solve(a, b)]


for kind in ("sin", "cos"):
    c = fit(kind)
    worst = 0
    for k in range(1, 2001):
        x = X * k / 2000
        z = x * x
        p = sum(D(c[j]) * z**j for j in range(len(c)))
        exact = dsin(x) if kind == "sin" else dcos(x)
        value = x + x**3 * p if kind == "sin" else 1 - z / 2 + z * z * p
        worst = max(worst, abs(value - exact) / exact)
    print(kind, ", ".join(v.hex() for v in c), f"max error {float(worst) / 2**-53:.3f} units of 2^-53")
