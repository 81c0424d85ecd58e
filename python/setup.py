"""Build the larder package with Debian's setuptools:

    pip install --no-build-isolation ./python          # (as /usr/bin/python3 -m pip)

against an installed liblarder (found with `pkg-config larder`), or
against a source tree's build with

    LARDER_INCLUDE_DIR=/path/to/larder/include \\
    LARDER_LIBRARY_DIR=/path/to/larder/build \\
    /usr/bin/python3 -m pip install --no-build-isolation ./python

(the extension then links that build's liblarder.so.0.2 and finds it
through an rpath). docs/python.md has the details.
"""

import os
import shlex
import subprocess

from setuptools import Extension, setup

HERE = os.path.dirname(os.path.abspath(__file__))


def pkg_config(*args):
    try:
        out = subprocess.run(["pkg-config", *args], check=True,
                             capture_output=True, text=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    return shlex.split(out)


def flags():
    inc = os.environ.get("LARDER_INCLUDE_DIR")
    lib = os.environ.get("LARDER_LIBRARY_DIR")
    xx = pkg_config("--cflags", "--libs", "libxxhash") or ["-lxxhash"]
    if inc or lib:
        if not (inc and lib):
            raise SystemExit("set both LARDER_INCLUDE_DIR and "
                             "LARDER_LIBRARY_DIR, or neither")
        return (["-I" + inc, "-L" + lib, "-llarder",
                 "-Wl,-rpath," + os.path.abspath(lib)] + xx)
    got = pkg_config("--cflags", "--libs", "larder")
    if got is None:
        raise SystemExit("liblarder not found by pkg-config (install it "
                         "with `make install`), or set "
                         "LARDER_INCLUDE_DIR and LARDER_LIBRARY_DIR")
    return got + xx


def split(fl):
    inc = [f[2:] for f in fl if f.startswith("-I")]
    libdirs = [f[2:] for f in fl if f.startswith("-L")]
    libs = [f[2:] for f in fl if f.startswith("-l")]
    extra = [f for f in fl if f.startswith("-Wl,")]
    return inc, libdirs, libs, extra


inc, libdirs, libs, extra = split(flags())

setup(
    name="larder",
    version="0.2.0",
    description="A shared cache for expensive data (Python binding)",
    packages=["larder", "larder.compat"],
    package_data={"larder": ["py.typed", "*.pyi"]},
    ext_modules=[
        Extension(
            "larder._larder",
            sources=["src/module.c", "src/store.c", "src/entry.c",
                     "src/hasher.c"],
            include_dirs=inc,
            library_dirs=libdirs,
            libraries=libs,
            extra_link_args=extra,
        )
    ],
    python_requires=">=3.9",
    # Always compiled and linked afresh: pip reuses python/build/, and an
    # extension left there by an install against another liblarder (the
    # installed one, a build tree's) would be installed unchanged, linked
    # to that one, without the rpath the flags above now ask for.
    options={"build_ext": {"force": True}},
)
