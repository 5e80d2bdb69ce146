/* Stand-in for miniaudio.h, which Debian does not package. Ollama's
 * llama.cpp uses it only to decode audio input for multimodal models;
 * the test server never sees audio, so every call reports failure. */
#ifndef STEERGATE_MINIAUDIO_STUB_H
#define STEERGATE_MINIAUDIO_STUB_H
#include <stddef.h>
#include <stdint.h>

typedef int ma_result;
typedef uint32_t ma_uint32;
typedef uint64_t ma_uint64;
typedef enum { ma_format_unknown = 0, ma_format_f32 = 5 } ma_format;
typedef struct { ma_format format; ma_uint32 channels; ma_uint32 sampleRate; } ma_decoder_config;
typedef struct { int unused; } ma_decoder;

#define MA_SUCCESS 0
#define MA_ERROR (-1)

#ifndef MA_API
#define MA_API
#endif

MA_API ma_decoder_config ma_decoder_config_init(ma_format f, ma_uint32 channels, ma_uint32 rate) {
    ma_decoder_config c; c.format = f; c.channels = channels; c.sampleRate = rate; return c;
}
MA_API ma_result ma_decoder_init_memory(const void *data, size_t size, const ma_decoder_config *cfg, ma_decoder *d) {
    (void)data; (void)size; (void)cfg; (void)d; return MA_ERROR;
}
MA_API ma_result ma_decoder_get_length_in_pcm_frames(ma_decoder *d, ma_uint64 *n) { (void)d; *n = 0; return MA_ERROR; }
MA_API ma_result ma_decoder_read_pcm_frames(ma_decoder *d, void *out, ma_uint64 n, ma_uint64 *read) {
    (void)d; (void)out; (void)n; *read = 0; return MA_ERROR;
}
MA_API ma_result ma_decoder_uninit(ma_decoder *d) { (void)d; return MA_SUCCESS; }
#endif
