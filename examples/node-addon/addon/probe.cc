// kiln-probe-addon: reports, from native code, what the process sees of the image: its uid,
// whether a shell is reachable, and what happens when it writes to /. C++ on purpose (std::
// strings and vectors), so the addon needs the C++ toolchain at install time.
#include <node_api.h>

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <string>
#include <unistd.h>
#include <vector>

namespace {

napi_value Str(napi_env env, const std::string& s) {
  napi_value v;
  napi_create_string_utf8(env, s.c_str(), s.size(), &v);
  return v;
}

napi_value Probe(napi_env env, napi_callback_info) {
  napi_value out;
  napi_create_object(env, &out);

  napi_value uid;
  napi_create_uint32(env, static_cast<uint32_t>(getuid()), &uid);
  napi_set_named_property(env, out, "uid", uid);

  std::vector<std::string> shells;
  for (const char* path : {"/bin/sh", "/bin/bash", "/bin/busybox", "/usr/bin/sh", "/usr/bin/bash"}) {
    if (access(path, F_OK) == 0) shells.emplace_back(path);
  }
  napi_value list;
  napi_create_array_with_length(env, shells.size(), &list);
  for (size_t i = 0; i < shells.size(); i++) napi_set_element(env, list, i, Str(env, shells[i]));
  napi_set_named_property(env, out, "shells", list);

  int fd = open("/kiln-write-probe", O_WRONLY | O_CREAT | O_TRUNC, 0644);
  std::string root_write = fd >= 0 ? std::string("written") : std::string(std::strerror(errno));
  if (fd >= 0) close(fd);
  napi_set_named_property(env, out, "rootWrite", Str(env, root_write));
  napi_set_named_property(env, out, "compiler", Str(env, std::string("g++ ") + __VERSION__));
  return out;
}

}  // namespace

NAPI_MODULE_INIT() {
  napi_value fn;
  napi_create_function(env, "probe", NAPI_AUTO_LENGTH, Probe, nullptr, &fn);
  napi_set_named_property(env, exports, "probe", fn);
  return exports;
}
