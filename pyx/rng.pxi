# brace._core: the jitter RNG, included by _core.pyx.

def rng_seed(uint64_t seed):
    c.brc_rng_seed(seed)


def rng_uniform():
    return c.brc_rng_uniform()
