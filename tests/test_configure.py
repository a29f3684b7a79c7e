#!/usr/bin/env python3
"""meson setup refuses a LibTorch built with the other C++ ABI
(_GLIBCXX_USE_CXX11_ABI), naming it. The LibTorch given is a stand-in made
here: a CMake config and a libc10.so whose c10::Device(std::string) is built
with the old ABI (refused) or the compiler's own (accepted, the control)."""
import os
import shutil
import subprocess
import tempfile
import unittest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = """add_library(torch SHARED IMPORTED)
set_target_properties(torch PROPERTIES
  IMPORTED_LOCATION "${CMAKE_CURRENT_LIST_DIR}/../../../lib/libc10.so"
  INTERFACE_INCLUDE_DIRECTORIES "${CMAKE_CURRENT_LIST_DIR}/../../../include")
set(TORCH_LIBRARIES torch)
set(TORCH_FOUND TRUE)
"""
HEADER = """#pragma once
#include <string>
namespace c10 {
struct Device {
  explicit Device(const std::string& name);
  bool is_cpu() const { return cpu_; }
  bool cpu_ = false;
};
}  // namespace c10
"""
SOURCE = '#include "c10/core/Device.h"\nc10::Device::Device(const std::string& name) : cpu_(name == "cpu") {}\n'


def make_libtorch(prefix, abi):
    os.makedirs(os.path.join(prefix, "share", "cmake", "Torch"))
    os.makedirs(os.path.join(prefix, "include", "c10", "core"))
    os.makedirs(os.path.join(prefix, "lib"))
    with open(os.path.join(prefix, "share", "cmake", "Torch", "TorchConfig.cmake"), "w") as f:
        f.write(CONFIG)
    with open(os.path.join(prefix, "include", "c10", "core", "Device.h"), "w") as f:
        f.write(HEADER)
    with open(os.path.join(prefix, "device.cpp"), "w") as f:
        f.write(SOURCE)
    lib = os.path.join(prefix, "lib")
    subprocess.run(["c++", "-shared", "-fPIC", f"-D_GLIBCXX_USE_CXX11_ABI={abi}", "-I", os.path.join(prefix, "include"),
                    os.path.join(prefix, "device.cpp"), "-o", os.path.join(lib, "libc10.so")], check=True)
    # meson also looks for libtorch_cpu beside it.
    subprocess.run(["c++", "-shared", "-fPIC", "-x", "c++", "/dev/null", "-o", os.path.join(lib, "libtorch_cpu.so")],
                   check=True)


def configure(prefix, build):
    return subprocess.run(["meson", "setup", build, ROOT, f"-Dlibtorch={prefix}", "-Dtests=disabled",
                           "-Dgst_plugin=disabled", "-Dcuda=disabled"],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


class LibTorchAbi(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="ruclip-configure-")

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def test_other_abi_is_refused_with_its_name(self):
        prefix = os.path.join(self.tmp, "old-abi")
        make_libtorch(prefix, 0)
        p = configure(prefix, os.path.join(self.tmp, "build-old"))
        self.assertNotEqual(p.returncode, 0, p.stdout[-2000:])
        self.assertRegex(p.stdout, r"LibTorch has the compiler's C\+\+ ABI\".*: links: NO")
        self.assertIn(f"LibTorch at {prefix} was built with another C++ ABI", p.stdout)

    def test_same_abi_passes_the_check(self):
        prefix = os.path.join(self.tmp, "new-abi")
        make_libtorch(prefix, 1)
        p = configure(prefix, os.path.join(self.tmp, "build-new"))
        self.assertRegex(p.stdout, r"LibTorch has the compiler's C\+\+ ABI\".*: links: YES")
        self.assertEqual(p.returncode, 0, p.stdout[-2000:])
        self.assertNotIn("another C++ ABI", p.stdout)


if __name__ == "__main__":
    unittest.main(verbosity=2)
