#!/usr/bin/env python3
# Writes the scipy.io.savemat fixtures read by tests/test_mat.cpp: an ODDS-style table (X [7, 3] double,
# y [7, 1] 0/1 double) plus variables of other classes, once plain and once with miCOMPRESSED elements.
# Format: MATLAB level 5 (savemat format='5'); values follow closed forms the C++ test recomputes.
# Usage: /usr/bin/python3 scripts/make_mat_fixture.py [out_dir]   (default tests/fixtures; needs scipy)
import os
import sys

import numpy as np
import scipy.io
import scipy.sparse


def variables():
    i, j = np.meshgrid(np.arange(7), np.arange(3), indexing="ij")
    # X[i, j] = +-(10 i + j + 0.5): exact in float32, the sign flips on column 1 to catch transposes
    x = (10.0 * i + j + 0.5) * np.where(j == 1, -1.0, 1.0)
    return {
        "X": x,
        "y": np.array([[0], [1], [0], [0], [1], [0], [0]], dtype=np.float64),
        "cube": np.arange(24, dtype=np.float64).reshape(2, 3, 4),  # rank 3: row-major arange back
        "i32": np.array([[-3, 0, 7], [2**31 - 1, -(2**31), 5]], dtype=np.int32),
        "u8": np.array([[0, 255, 17]], dtype=np.uint8),
        "f32": np.array([[0.25, -1.5], [3.0, 1e-3]], dtype=np.float32),
        "i64": np.array([[-(2**40), 12345]], dtype=np.int64),
        "flag": np.array([[True, False, True]]),  # logical: uint8 class with the logical flag
        "row": np.array([1.0, 2.0, 3.0, 4.0]),  # 1-d: saved as a [1, 4] row (oned_as='row')
        "long_variable_name": np.array([[42.0]]),
        # skipped by the reader: char, cell, struct, sparse
        "title": "odds fixture",
        "cellv": np.array([np.array([[1.0]]), "a"], dtype=object),
        "st": {"a": np.array([[1.0, 2.0]]), "b": "text"},
        "sp": scipy.sparse.csc_matrix(np.array([[0.0, 1.0], [2.0, 0.0]])),
    }


def main():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(root, "tests", "fixtures")
    os.makedirs(out, exist_ok=True)
    v = variables()
    for name, compress in (("mat_scipy.mat", False), ("mat_scipy_z.mat", True)):
        path = os.path.join(out, name)
        scipy.io.savemat(path, v, format="5", do_compression=compress, oned_as="row")
        # Round trip through scipy's own reader as a sanity check on the fixture itself.
        back = scipy.io.loadmat(path)
        assert np.array_equal(back["X"], v["X"]) and np.array_equal(back["cube"], v["cube"])
        print(path, os.path.getsize(path), "bytes")


if __name__ == "__main__":
    main()
