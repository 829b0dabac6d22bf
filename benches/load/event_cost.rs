//! What the event log costs a rotation: the raw compare-and-swap with and
//! without the `refreshed` event in the same statement, interleaved.

use crate::limits::{run_raw_update, RAW_CAS, RAW_CAS_WITH_EVENT};
use crate::report::{ratio, Ratio, Stats};
use crate::scenarios::Scenario;
use crate::server::Bench;

pub(crate) struct EventCost {
    pub(crate) plain: Stats,
    pub(crate) with_event: Stats,
}

pub(crate) fn run(bench: &mut Bench) -> EventCost {
    let (rc, slice) = (bench.config.reference_concurrency(), bench.config.slice());
    let (mut plain, mut with_event) = (Vec::new(), Vec::new());
    for _ in 0..bench.config.rounds {
        plain.push(run_raw_update(
            &bench.db,
            RAW_CAS,
            &mut bench.raw,
            rc,
            slice,
        ));
        with_event.push(run_raw_update(
            &bench.db,
            RAW_CAS_WITH_EVENT,
            &mut bench.raw,
            rc,
            slice,
        ));
    }
    let mut plain = Stats::from_slices(Scenario::RawUpdate, rc, plain);
    plain.label = "raw CAS UPDATE".into();
    let mut with_event = Stats::from_slices(Scenario::RawUpdate, rc, with_event);
    with_event.label = "raw CAS UPDATE + event".into();
    EventCost { plain, with_event }
}

impl EventCost {
    pub(crate) fn ratio(&self) -> Ratio {
        ratio(
            "CAS with event / without",
            self.with_event.rps / self.plain.rps,
            None,
            None,
            format!(
                "{:.0} / {:.0} rotations/s at the database (x{}): the cost of the refreshed event",
                self.with_event.rps, self.plain.rps, self.plain.concurrency
            ),
        )
    }
}
