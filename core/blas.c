/* OpenBLAS core selection (see core.h). */
#include "core.h"

#include <cblas.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

const char *blas_core_name(void) {
    const char *name = openblas_get_corename();
    return name ? name : "unknown";
}

/* OpenBLAS 0.3.21's AVX-512 cores; every other core name runs older kernels. */
static int core_has_avx512(const char *name) {
    static const char *avx512[] = {"SkylakeX", "Cooperlake", "SapphireRapids"};
    for (size_t i = 0; i < sizeof avx512 / sizeof avx512[0]; i++)
        if (strcasecmp(name, avx512[i]) == 0) return 1;
    return 0;
}

int blas_core_has_avx512(void) { return core_has_avx512(blas_core_name()); }

void blas_select_best_core(char **argv) {
    /* OPENBLAS_CORETYPE=Haswell is sometimes set machine-wide; on an AVX-512
     * CPU that only costs speed, so it is overridden unless the user asks to
     * keep it (METAMERS_KEEP_OPENBLAS_CORE=1). */
    if (getenv("METAMERS_KEEP_OPENBLAS_CORE") || getenv("METAMERS_NO_CORE_SELECT")) return;
    __builtin_cpu_init();
    if (!__builtin_cpu_supports("avx512f") || core_has_avx512(blas_core_name())) return;
    /* Re-exec once; METAMERS_NO_CORE_SELECT guards against a loop if the
     * setting does not take. If exec fails we simply continue at Haswell speed. */
    setenv("OPENBLAS_CORETYPE", "SkylakeX", 1);
    setenv("METAMERS_NO_CORE_SELECT", "1", 1);
    execv("/proc/self/exe", argv);
    unsetenv("OPENBLAS_CORETYPE");
}

int blas_set_threads(int n) {
    int old = openblas_get_num_threads();
    if (n > 0) openblas_set_num_threads(n);
    return old;
}
