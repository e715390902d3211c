/* Audio files through the loader (libsndfile: WAV, FLAC, OGG, AIFF, ...;
 * mono mix, NaN/Inf check, libsoxr resampling to the front end's rate). */
#include <math.h>

#include "../../stimuli/stimuli.h"
#include "fuzz.h"

FUZZ_TARGET(audio) {
    const char *path = fuzz_write_file("clip.wav", data, size);
    Audio a;
    Error err = {{0}};
    if (audio_read(path, STIM_RATE, 0, &a, &err) != 0) {
        fuzz_check_error(&err, path);
        return 0;
    }
    fuzz_assert(a.n > 0 && a.rate == STIM_RATE, "a clip at the asked rate");
    for (int64_t i = 0; i < a.n; i++) fuzz_assert(isfinite(a.samples[i]), "finite samples");
    audio_free(&a);
    return 0;
}
