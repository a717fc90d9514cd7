/*
 * glibc malloc tuning for the pixel work, built by the Makefile into
 * build/malloc-tune.node and used by src/images/malloc-tune.ts (which
 * explains why and gives the figures).
 *
 * setMmapThreshold(bytes) -> true when glibc took it: blocks of at least
 * `bytes` are mapped on their own and unmapped when freed, and the threshold
 * no longer grows by itself (glibc raises it up to 32 MB after each freed
 * mapping, after which libvips's tile buffers pile up in its arenas).
 */
#include <malloc.h>
#include <node_api.h>

static napi_value set_mmap_threshold(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  int32_t bytes = 0;
  napi_value result;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 1) return NULL;
  if (napi_get_value_int32(env, argv[0], &bytes) != napi_ok || bytes <= 0) {
    napi_throw_type_error(env, NULL, "setMmapThreshold(bytes): bytes must be a positive int32");
    return NULL;
  }
  if (napi_get_boolean(env, mallopt(M_MMAP_THRESHOLD, bytes) == 1, &result) != napi_ok) return NULL;
  return result;
}

NAPI_MODULE_INIT() {
  napi_value fn;
  if (napi_create_function(env, "setMmapThreshold", NAPI_AUTO_LENGTH, set_mmap_threshold, NULL, &fn) != napi_ok) return NULL;
  if (napi_set_named_property(env, exports, "setMmapThreshold", fn) != napi_ok) return NULL;
  return exports;
}
