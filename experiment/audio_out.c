/* Sound output: one PortAudio stream opened before the first trial and kept
 * running (silence between sounds), so a device that is missing, busy or
 * refuses the format is an error before the session starts, never in the
 * middle of it, and starting a sound costs no device setup.
 *
 * The callback owns the playing position; the main thread hands it a sound
 * through one atomic pointer. Stimulus onset is taken from PortAudio's DAC
 * time of the first buffer holding the sound, so response times are measured
 * from when the sound leaves the device, not from when it was requested.
 *
 * "file:PATH" is a sink with the same interface that collects everything
 * that would have been played (stereo float32 at the output rate) and writes
 * it as a WAV on close: sessions can be tested and audited without a sound
 * card. */
#include <ctype.h>
#include <fcntl.h>
#include <portaudio.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

static const Sound STOP_SOUND; /* sentinel request: stop playing */

struct AudioOut {
    int is_file, rate;
    double latency;
    char name[256];
    /* file sink */
    char *file_path;
    float *buf;
    int64_t frames, cap;
    double file_onset;
    /* PortAudio */
    PaStream *stream;
    _Atomic(const Sound *) request;
    /* Busy = a requested sound has not finished: play() bumps req_gen before
     * handing over the sound, the callback records the generation it took and
     * publishes it in done_gen when the sound ends. No flag can be lost
     * between the threads, however short the sound. */
    _Atomic uint64_t req_gen, done_gen;
    uint64_t cur_gen; /* callback thread only */
    _Atomic int64_t onset_ns;
    const Sound *cur; /* callback thread only */
    int64_t pos;
};

void exp_sound_free(Sound *s) {
    free(s->x);
    memset(s, 0, sizeof *s);
}

int exp_sound_load(const char *path, int rate, Sound *s, Error *err) {
    memset(s, 0, sizeof *s);
    Audio a;
    if (audio_read(path, 0, 0, &a, err) != 0) return -1;
    int rc = audio_resample(a.samples, a.n, a.rate, rate, &s->x, &s->frames, err);
    audio_free(&a);
    s->channels = 1;
    return rc;
}

/* ALSA and JACK print pages of probing noise on machines without a sound
 * card; the one-line errors below say what matters. */
static int quiet_begin(void) {
    if (getenv("METAMERS_AUDIO_DEBUG")) return -1;
    fflush(stderr);
    int saved = dup(2), null = open("/dev/null", O_WRONLY);
    if (saved >= 0 && null >= 0) dup2(null, 2);
    if (null >= 0) close(null);
    return saved;
}

static void quiet_end(int saved) {
    if (saved < 0) return;
    dup2(saved, 2);
    close(saved);
}

static int pa_init(Error *err) {
    int q = quiet_begin();
    PaError e = Pa_Initialize();
    quiet_end(q);
    return e == paNoError ? 0 : error_set(err, "PortAudio: %s", Pa_GetErrorText(e));
}

static void pa_done(void) {
    int q = quiet_begin();
    Pa_Terminate();
    quiet_end(q);
}

static int64_t mono_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int callback(const void *in, void *out, unsigned long frames,
                    const PaStreamCallbackTimeInfo *ti, PaStreamCallbackFlags flags, void *user) {
    (void)in, (void)flags;
    AudioOut *a = user;
    float *o = out;
    const Sound *req = atomic_exchange(&a->request, NULL);
    if (req == &STOP_SOUND)
        a->cur = NULL;
    else if (req)
        a->cur = req, a->pos = 0, a->cur_gen = atomic_load(&a->req_gen);
    unsigned long i = 0;
    if (a->cur) {
        if (a->pos == 0) {
            double delay = ti->outputBufferDacTime - ti->currentTime;
            if (!(delay >= 0 && delay < 1)) delay = a->latency; /* some hosts report 0s */
            atomic_store(&a->onset_ns, mono_ns() + (int64_t)(delay * 1e9));
        }
        const Sound *s = a->cur;
        for (; i < frames && a->pos < s->frames; i++, a->pos++) {
            for (int ch = 0; ch < 2; ch++) {
                float v = s->x[a->pos * s->channels + (s->channels == 2 ? ch : 0)];
                o[2 * i + ch] = v > 1.f ? 1.f : v < -1.f ? -1.f : v;
            }
        }
        if (a->pos >= s->frames) a->cur = NULL, atomic_store(&a->done_gen, a->cur_gen);
    }
    memset(o + 2 * i, 0, sizeof(float) * 2 * (frames - i));
    return paContinue;
}

static int find_device(const char *device, Error *err) {
    int n = Pa_GetDeviceCount();
    if (!device) {
        int d = Pa_GetDefaultOutputDevice();
        if (d == paNoDevice)
            return error_set(err, "no audio output device found (connect the headphones or "
                                  "sound card; `metamers experiment devices` lists outputs)");
        return d;
    }
    char *end;
    long idx = strtol(device, &end, 10);
    if (*device && !*end) {
        if (idx < 0 || idx >= n || Pa_GetDeviceInfo((int)idx)->maxOutputChannels < 1)
            return error_set(err,
                             "no audio output device %ld (`metamers experiment devices` "
                             "lists %d devices)",
                             idx, n);
        return (int)idx;
    }
    int found = -1, count = 0;
    for (int i = 0; i < n; i++) {
        const PaDeviceInfo *d = Pa_GetDeviceInfo(i);
        if (d->maxOutputChannels > 0 && strcasestr(d->name, device)) found = i, count++;
    }
    if (count == 1) return found;
    return error_set(err,
                     count ? "audio device name '%s' matches %d devices; give its number"
                           : "no audio output device matches '%s' (%d found; see "
                             "`metamers experiment devices`)",
                     device, count ? count : n);
}

static int open_device(AudioOut *a, const char *device, int rate, Error *err) {
    if (pa_init(err) != 0) return -1;
    int dev = find_device(device, err);
    if (dev < 0) return pa_done(), -1;
    const PaDeviceInfo *info = Pa_GetDeviceInfo(dev);
    snprintf(a->name, sizeof a->name, "%s (%s)", info->name,
             Pa_GetHostApiInfo(info->hostApi)->name);
    if (info->maxOutputChannels < 2) {
        pa_done();
        return error_set(err, "%s has %d output channel; stereo is needed (headphone check)",
                         a->name, info->maxOutputChannels);
    }
    a->rate = rate > 0 ? rate : (int)(info->defaultSampleRate + 0.5);
    PaStreamParameters p = {dev, 2, paFloat32, info->defaultLowOutputLatency, NULL};
    a->latency = info->defaultLowOutputLatency; /* the callback may need it at once */
    int q = quiet_begin();
    PaError e = Pa_IsFormatSupported(NULL, &p, a->rate);
    if (e == paFormatIsSupported)
        e = Pa_OpenStream(&a->stream, NULL, &p, a->rate, paFramesPerBufferUnspecified, paClipOff,
                          callback, a);
    if (e == paNoError) e = Pa_StartStream(a->stream);
    quiet_end(q);
    if (e != paNoError) {
        error_set(err, "cannot play stereo at %d Hz on %s: %s%s", a->rate, a->name,
                  Pa_GetErrorText(e),
                  e == paDeviceUnavailable ? " (is another program using it?)"
                                           : " (try --rate 44100 or 48000)");
        if (a->stream) Pa_CloseStream(a->stream);
        a->stream = NULL;
        pa_done();
        return -1;
    }
    const PaStreamInfo *si = Pa_GetStreamInfo(a->stream);
    a->latency = si ? si->outputLatency : info->defaultLowOutputLatency;
    return 0;
}

static int open_file(AudioOut *a, const char *spec, int default_rate, Error *err) {
    const char *path = spec + 5, *comma = strstr(path, ",rate=");
    a->is_file = 1;
    a->file_path = comma ? strndup(path, (size_t)(comma - path)) : xstrdup(path);
    a->rate = comma ? atoi(comma + 6) : default_rate;
    snprintf(a->name, sizeof a->name, "file:%s", a->file_path);
    if (!*a->file_path || a->rate < 1000 || a->rate > 384000)
        return error_set(err,
                         "--audio %s: expected file:PATH[,rate=HZ] with a rate in "
                         "1000..384000",
                         spec);
    return 0;
}

int exp_audio_out_open(const char *spec, const char *device, int rate, int default_rate,
                       AudioOut **out, Error *err) {
    AudioOut *a = xcalloc(1, sizeof *a);
    int rc;
    if (spec && strncmp(spec, "file:", 5) == 0)
        rc = open_file(a, spec, rate ? rate : default_rate, err);
    else if (spec)
        rc = error_set(err, "--audio %s: expected file:PATH (or omit it to use a device)", spec);
    else
        rc = open_device(a, device, rate, err);
    if (rc != 0) {
        free(a->file_path);
        free(a);
        return -1;
    }
    *out = a;
    return 0;
}

int exp_audio_out_rate(const AudioOut *a) { return a->rate; }
double exp_audio_out_latency(const AudioOut *a) { return a->latency; }
const char *exp_audio_out_name(const AudioOut *a) { return a->name; }

int exp_audio_out_play(AudioOut *a, const Sound *s, Error *err) {
    if (!a->is_file) {
        atomic_store(&a->onset_ns, 0);
        atomic_fetch_add(&a->req_gen, 1);
        atomic_store(&a->request, s);
        return 0;
    }
    if (a->frames + s->frames > a->cap) {
        a->cap = 2 * (a->frames + s->frames) + 48000;
        float *b = realloc(a->buf, sizeof(float) * 2 * (size_t)a->cap);
        if (!b) return error_set(err, "out of memory collecting %s", a->name);
        a->buf = b;
    }
    for (int64_t i = 0; i < s->frames; i++)
        for (int ch = 0; ch < 2; ch++)
            a->buf[2 * (a->frames + i) + ch] = s->x[i * s->channels + (s->channels == 2 ? ch : 0)];
    a->frames += s->frames;
    a->file_onset = now_seconds();
    return 0;
}

int exp_audio_out_busy(AudioOut *a) {
    return a->is_file ? 0 : atomic_load(&a->done_gen) != atomic_load(&a->req_gen);
}

double exp_audio_out_onset(AudioOut *a) {
    if (a->is_file) return a->file_onset;
    return (double)atomic_load(&a->onset_ns) * 1e-9;
}

void exp_audio_out_stop(AudioOut *a) {
    if (a->is_file) return;
    atomic_store(&a->request, &STOP_SOUND);
    /* Wait (at most 0.5 s) until the callback has let go of the sound, so
     * the caller may free it. */
    for (int i = 0; i < 500 && atomic_load(&a->request) != NULL; i++) {
        struct timespec ms = {0, 1000000};
        nanosleep(&ms, NULL);
    }
    atomic_store(&a->done_gen, atomic_load(&a->req_gen));
}

int exp_audio_out_close(AudioOut *a, Error *err) {
    if (!a) return 0;
    int rc = 0;
    if (a->is_file) {
        rc = audio_write_wav(a->file_path, a->buf, a->frames, 2, a->rate, AUDIO_FLOAT32, NULL, err);
    } else if (a->stream) {
        int q = quiet_begin();
        Pa_StopStream(a->stream);
        Pa_CloseStream(a->stream);
        quiet_end(q);
        pa_done();
    }
    free(a->file_path);
    free(a->buf);
    free(a);
    return rc;
}

/* Tests drive the device path without a device: an output whose callback
 * runs only when pumped by hand, with the given DAC delay. */
AudioOut *exp_audio_out_fake(int rate, double latency) {
    AudioOut *a = xcalloc(1, sizeof *a);
    a->rate = rate;
    a->latency = latency;
    snprintf(a->name, sizeof a->name, "fake");
    return a;
}

void exp_audio_out_pump(AudioOut *a, float *out, unsigned long frames, double dac_delay) {
    PaStreamCallbackTimeInfo ti = {0, 100.0, 100.0 + dac_delay};
    callback(NULL, out, frames, &ti, 0, a);
}

/* ----------------------------------------------------------- devices */

int experiment_cmd_devices(int argc, char **argv) {
    if (argc > 1 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        printf("usage: metamers experiment devices\n\nLists audio outputs (number, name, "
               "channels, default rate, latency);\npass the number or part of the name to "
               "`experiment run --device`.\n");
        return 0;
    }
    if (argc > 1) {
        fprintf(stderr, "metamers experiment devices: takes no arguments (see --help)\n");
        return 2;
    }
    Error err = {{0}};
    if (pa_init(&err) != 0) {
        fprintf(stderr, "metamers experiment devices: %s\n", err.msg);
        return 1;
    }
    int n = Pa_GetDeviceCount(), def = Pa_GetDefaultOutputDevice(), shown = 0;
    for (int i = 0; i < n; i++) {
        const PaDeviceInfo *d = Pa_GetDeviceInfo(i);
        if (d->maxOutputChannels < 1) continue;
        if (!shown++)
            printf("  #  %-44s %3s %7s %8s\n", "output (host API)", "ch", "rate", "latency");
        char name[128];
        snprintf(name, sizeof name, "%s (%s)", d->name, Pa_GetHostApiInfo(d->hostApi)->name);
        printf("%s%2d  %-44.44s %3d %7.0f %6.1fms\n", i == def ? "*" : " ", i, name,
               d->maxOutputChannels, d->defaultSampleRate, 1000 * d->defaultLowOutputLatency);
    }
    pa_done();
    if (!shown) {
        fprintf(stderr, "metamers experiment devices: no audio output devices found (connect "
                        "headphones or a sound card; --audio file:PATH runs without one)\n");
        return 1;
    }
    printf("(* = default)\n");
    return 0;
}
