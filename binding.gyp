{
  "targets": [
    {
      "target_name": "immunize_torch",
      "sources": ["native/addon.cc", "native/tensor.cc", "native/ops.cc", "native/autograd.cc", "native/runtime.cc"],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")", "<!@(node scripts/find-libtorch.mjs includes)"],
      "defines": ["NAPI_VERSION=8", "NODE_ADDON_API_DISABLE_DEPRECATED", "NODE_ADDON_API_CPP_EXCEPTIONS_ALL", "_GLIBCXX_USE_CXX11_ABI=<!(node scripts/find-libtorch.mjs abi)"],
      "cflags!": ["-fno-exceptions", "-fno-rtti"],
      "cflags_cc!": ["-fno-exceptions", "-fno-rtti", "-std=gnu++17", "-std=gnu++20"],
      "cflags_cc": ["-std=c++17", "-fexceptions", "-frtti", "-O2", "-Wno-unused-parameter", "-Wno-deprecated-declarations"],
      "ldflags": ["-Wl,--no-as-needed", "-Wl,-rpath,<!(node scripts/find-libtorch.mjs libdir)"],
      "libraries": ["-L<!(node scripts/find-libtorch.mjs libdir)", "<!@(node scripts/find-libtorch.mjs libs)"]
    }
  ]
}
