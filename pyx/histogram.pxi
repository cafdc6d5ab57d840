# brace._core: LatencyHistogramCore, the compiled base of brace.LatencyHistogram; included by _core.pyx.

from libc.stdint cimport uint32_t

HISTOGRAM_WINDOW_MIN = c.BRC_HISTOGRAM_WINDOW_MIN
HISTOGRAM_WINDOW_MAX = c.BRC_HISTOGRAM_WINDOW_MAX
HISTOGRAM_PPM = c.BRC_HISTOGRAM_PPM


cdef class LatencyHistogramCore:
    """A latency histogram's state embedded by value; configured by brace.LatencyHistogram.

    A record is one CAS in the C core on brace's clock; a percentile reads the
    buckets of the current and the previous window.
    """

    cdef c.brc_histogram_t _state

    def _configure(self, uint64_t window_ns):
        _check(c.brc_histogram_init(&self._state, window_ns), "window")

    def _record_ns(self, uint64_t duration_ns):
        """Records one duration in ns at brace's clock now."""
        _check(c.brc_histogram_record(&self._state, c.brc_now_ns(), duration_ns),
               "latency histogram (not configured)")

    def _percentile_ns(self, uint32_t q_ppm):
        """(duration in ns at the q_ppm-th millionth, durations read) over the last windows."""
        cdef uint64_t value = 0, count = 0
        _check(c.brc_histogram_percentile(&self._state, c.brc_now_ns(), q_ppm, &value, &count),
               "latency histogram (not configured, or q out of range)")
        return value, count
