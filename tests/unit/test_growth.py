"""policies/growth.py: the dashboard's arrivals and storage plots from size samples."""

from __future__ import annotations

from plugin.policies.growth import Sample, arrivals, bucket_starts, storage

HOUR = 3600.0
END = 100 * HOUR


def test_buckets_end_at_the_end():
    assert bucket_starts(END, HOUR, 3) == (END - 3 * HOUR, END - 2 * HOUR, END - HOUR)


def test_arrivals_are_growth_between_samples_in_the_later_ones_bucket():
    starts = bucket_starts(END, HOUR, 3)
    samples = [Sample(END - 4 * HOUR, 10, 0), Sample(END - 2.5 * HOUR, 15, 0), Sample(END - 2.2 * HOUR, 17, 0),
               Sample(END - 0.5 * HOUR, 40, 0)]
    series = arrivals(samples, starts, HOUR)
    assert series.values == (7, None, 23)
    assert series.highest == 23


def test_a_deletion_is_no_arrival_and_an_unsampled_server_plots_nothing():
    starts = bucket_starts(END, HOUR, 2)
    deleted = [Sample(END - 1.5 * HOUR, 50, 0), Sample(END - 0.5 * HOUR, 20, 0)]
    assert arrivals(deleted, starts, HOUR).values == (None, 0)
    empty = arrivals([], starts, HOUR)
    assert empty.values == (None, None) and empty.highest == 0


def test_storage_is_the_last_sample_up_to_each_buckets_end():
    starts = bucket_starts(END, HOUR, 3)
    samples = [Sample(END - 2.5 * HOUR, 0, 100), Sample(END - 2.1 * HOUR, 0, 150), Sample(END - 0.2 * HOUR, 0, 90)]
    assert storage(samples, starts, HOUR).values == (150.0, 150.0, 90.0)
    assert storage([Sample(END - 0.5 * HOUR, 0, 7)], starts, HOUR).values == (None, None, 7.0)
