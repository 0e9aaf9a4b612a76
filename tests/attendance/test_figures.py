"""The interval arithmetic behind the figures, without a database."""

from __future__ import annotations

import datetime as dt
import types

from ticketing.attendance.figures import Stay, peak, ticket_attendance, union

T0 = dt.datetime(2030, 1, 31, 17, 0, tzinfo=dt.UTC)
MIN = dt.timedelta(minutes=1)


def at(minutes: float) -> dt.datetime:
    return T0 + minutes * MIN


def test_union_merges_overlapping_and_touching_stays():
    assert union([(at(10), at(20)), (at(0), at(5)), (at(5), at(8)), (at(15), at(30)), (at(40), at(40))]) == [
        (at(0), at(8)), (at(10), at(30))]


def test_peak_counts_a_hand_over_at_the_same_instant_once():
    assert peak([[(at(0), at(10))], [(at(10), at(20))]]) == 1
    assert peak([[(at(0), at(10))], [(at(5), at(20))], [(at(6), at(7))]]) == 3
    assert peak([]) == 0


def test_a_reload_is_not_two_devices_but_a_second_tab_is():
    webinar = types.SimpleNamespace(starts_at=at(0), ends_at=at(60), one_device=False)
    # The old connection's leave comes 40 s after the reload's join.
    reload = [Stay(at(0), at(20) + dt.timedelta(seconds=40), "a@m/1", ""), Stay(at(20), at(50), "a@m/2", "")]
    figures = ticket_attendance(reload, webinar, at(90))
    assert figures.concurrent_devices == 1 and figures.shared_link == [] and figures.minutes_present == 50
    tab = [Stay(at(0), at(50), "a@m/1", ""), Stay(at(10), at(15), "a@m/2", "")]
    assert ticket_attendance(tab, webinar, at(90)).shared_link == ["two_devices_at_once"]


def test_share_counts_only_the_scheduled_time_and_open_stays_count_until_the_cut_off():
    webinar = types.SimpleNamespace(starts_at=at(0), ends_at=at(60), one_device=True)
    figures = ticket_attendance([Stay(at(-10), None, "a@m/1", "")], webinar, at(45), devices=3, moves=1)
    assert figures.minutes_present == 55 and figures.percent_of_scheduled == 75
    assert figures.reaches(75) and not figures.reaches(76)
    assert figures.present_now and figures.last_leave_at is None
    assert figures.shared_link == ["more_devices_than_allowed"]
