{
  "targets": [
    {
      "target_name": "kiln_probe",
      "sources": ["probe.cc"],
      "cflags_cc": ["-std=c++17"]
    }
  ]
}
