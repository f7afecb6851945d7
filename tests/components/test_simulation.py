"""The simulated hub sensors: labelled faults, drift, and the same series for the same seed."""

from __future__ import annotations

import itertools
import statistics

import pytest

from edgewise.components.simulation import FAULTS, Reading, SimulationSettings, readings


def take(settings: SimulationSettings, count: int) -> list[Reading]:
    return list(itertools.islice(readings(settings, start=1_000.0), count))


def test_the_same_seed_gives_the_same_series_and_another_seed_another() -> None:
    assert take(SimulationSettings(seed=3), 200) == take(SimulationSettings(seed=3), 200)
    assert take(SimulationSettings(seed=3), 200) != take(SimulationSettings(seed=4), 200)


def test_readings_are_spaced_by_the_interval_and_numbered() -> None:
    series = take(SimulationSettings(interval_s=0.5), 5)
    assert [reading.sequence for reading in series] == [0, 1, 2, 3, 4]
    assert [reading.timestamp for reading in series] == [1000.0, 1000.5, 1001.0, 1001.5, 1002.0]


def test_a_simulated_interval_gives_the_values_of_that_interval_at_the_pace_of_the_other() -> None:
    fast = take(SimulationSettings(interval_s=0.1, simulated_interval_s=7.5), 100)
    slow = take(SimulationSettings(interval_s=7.5), 100)
    assert [reading.timestamp for reading in fast[:3]] == pytest.approx([1000.0, 1000.1, 1000.2])
    assert [(r.temperature, r.humidity, r.fault) for r in fast] == [
        (r.temperature, r.humidity, r.fault) for r in slow
    ]


def test_without_faults_nothing_is_labelled_and_values_stay_in_their_normal_range() -> None:
    series = take(SimulationSettings(fault_rate=0.0), 2_000)
    assert {reading.anomaly for reading in series} == {0}
    assert all(17.0 < reading.temperature < 25.0 for reading in series)
    assert all(reading.vibration < 0.05 for reading in series)


def test_every_kind_of_fault_is_injected_labelled_and_visible_in_the_values() -> None:
    series = take(SimulationSettings(seed=1, fault_rate=0.05), 5_000)
    faulty = [reading for reading in series if reading.anomaly]
    assert {reading.fault for reading in faulty} == set(FAULTS)
    assert 0.05 < len(faulty) / len(series) < 0.4
    normal_temperature = statistics.fmean(r.temperature for r in series if not r.anomaly)
    spikes = [r for r in faulty if r.fault == "spike"]
    assert min(abs(r.temperature - normal_temperature) for r in spikes) > 3.0
    assert min(r.vibration for r in faulty if r.fault == "vibration") > 0.1
    for reading in (r for r in faulty if r.fault == "stuck"):
        previous = series[reading.sequence - 1]
        assert (reading.temperature, reading.humidity, reading.vibration) == (
            previous.temperature,
            previous.humidity,
            previous.vibration,
        )


def test_drift_raises_the_temperature_from_its_start_without_labelling_it() -> None:
    settings = SimulationSettings(seed=2, fault_rate=0.0, drift_after=1_000, drift_per_reading=0.01)
    series = take(settings, 2_000)
    before = statistics.fmean(r.temperature for r in series[:1_000])
    after = statistics.fmean(r.temperature for r in series[1_500:])
    assert after - before > 5.0
    assert {reading.anomaly for reading in series} == {0}


def test_the_payload_carries_the_values_and_the_label() -> None:
    reading = take(SimulationSettings(), 1)[0]
    payload = reading.payload("hub-1")
    assert payload["thing"] == "hub-1"
    assert payload["anomaly"] == 0
    assert payload["fault"] is None
    assert payload["temperature"] == round(reading.temperature, 3)


@pytest.mark.parametrize(
    ("settings", "field"),
    [
        ({"fault_rate": 1.5}, "fault_rate"),
        ({"interval_s": 0.0}, "interval_s"),
        ({"drift_after": -1}, "drift_after"),
        ({"simulated_interval_s": 0.0}, "simulated_interval_s"),
    ],
)
def test_bad_settings_name_the_field(settings: dict[str, float], field: str) -> None:
    with pytest.raises(ValueError, match=field):
        SimulationSettings(**settings)  # type: ignore[arg-type]
