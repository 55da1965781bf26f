"""Builds the `rotary` Python module through the project's CMake build (pip's
setuptools backend, see pyproject.toml): the library is compiled static into
the module, so the installed module is one file that needs only the system's
Highway and oneTBB shared libraries. ROTARY_CMAKE_ARGS adds CMake arguments
(e.g. "-DROTARY_HWY_TARGETS=static" for a build of one kernel target)."""
import os
import shlex
import subprocess
import sys
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

SOURCE = Path(__file__).resolve().parent


class CMakeExtension(Extension):
    def __init__(self, name):
        super().__init__(name, sources=[])


class CMakeBuild(build_ext):
    def build_extension(self, ext):
        build = Path(self.build_temp).resolve() / "cmake"
        args = [
            "-DCMAKE_BUILD_TYPE=Release",
            "-DBUILD_SHARED_LIBS=OFF",
            "-DROTARY_BUILD_PYTHON=ON",
            "-DROTARY_BUILD_TESTS=OFF",
            "-DROTARY_BUILD_BENCH=OFF",
            "-DROTARY_BUILD_EXAMPLES=OFF",
            f"-DPython_EXECUTABLE={sys.executable}",
        ] + shlex.split(os.environ.get("ROTARY_CMAKE_ARGS", ""))
        subprocess.run(["cmake", "-S", str(SOURCE), "-B", str(build)] + args, check=True)
        jobs = str(os.cpu_count() or 1)
        subprocess.run(["cmake", "--build", str(build), "--target", "rotary_python", "-j", jobs], check=True)
        built = next((build / "python").glob("rotary*.so"))
        target = Path(self.get_ext_fullpath(ext.name))
        target.parent.mkdir(parents=True, exist_ok=True)
        self.copy_file(str(built), str(target))


setup(ext_modules=[CMakeExtension("rotary")], cmdclass={"build_ext": CMakeBuild}, zip_safe=False)
