{
  "targets": [
    {
      "target_name": "ladder_torch",
      "sources": [
        "src/addon.cc",
        "src/allocator.cc",
        "src/ops_elementwise.cc",
        "src/ops_reduce.cc",
        "src/ops_shape.cc",
        "src/ops_index.cc",
        "src/ops_nn.cc",
        "src/ops_fused.cc",
        "src/distributed.cc"
      ],
      "include_dirs": ["<!@(node -p \"process.env.LADDER_TORCH_INCLUDE_DIRS || '.'\")"],
      "defines": ["NAPI_VERSION=8"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions", "-fno-rtti"],
      "cflags_cc": [
        "-fexceptions",
        "-frtti",
        "-O2",
        "-Wno-unused-parameter",
        "<!@(node -p \"process.env.LADDER_TORCH_CXXFLAGS || '-std=c++17'\")"
      ],
      "libraries": ["<!@(node -p \"process.env.LADDER_TORCH_LDFLAGS || '-ltorch -ltorch_cpu -lc10'\")"]
    }
  ]
}
