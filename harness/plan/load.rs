//! The load of a plan: which model paces it, how many iterations and workers, the stages of an open or
//! stepped schedule. This is the one place that matches on the load model; everything else asks the
//! plan's questions (is it scheduled? how many workers? how long?) and gets its [`Schedule`] from here.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::config::units::Rate;
use crate::kinds::LoadModel;
use crate::result::{Shard, StagePlan};
use crate::scenario::Load;
use crate::schedule::closed::ClosedLoop;
use crate::schedule::open::OpenLoop;
use crate::schedule::stepped::SteppedLoad;
use crate::schedule::{OpenStage, Schedule};

/// How iterations are paced, and which part of them this process runs. The fields hold the whole
/// load (every shard's together); the methods answer for this shard, except where they say so.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadPlan {
    model: LoadModel,
    /// Iterations the whole load plans to start.
    iterations: u64,
    /// Closed: the workers; open and stepped: the bound on iterations in flight.
    concurrency: u32,
    /// Open: its one stage; stepped: every stage; closed: none.
    stages: Vec<OpenStage>,
    /// The part this process runs: every `count`-th iteration, from `index`.
    shard: Shard,
}

impl From<&Load> for LoadPlan {
    fn from(load: &Load) -> Self {
        Self {
            model: load.model(),
            iterations: load.planned_iterations(),
            concurrency: load.concurrency(),
            stages: match load {
                Load::Closed { .. } => Vec::new(),
                Load::Open(stage) => vec![*stage],
                Load::Stepped { stages, .. } => stages.clone(),
            },
            shard: Shard::WHOLE,
        }
    }
}

impl LoadPlan {
    /// A closed load of `iterations` over `concurrency` workers.
    pub fn closed(iterations: u64, concurrency: u32) -> Self {
        Self::from(&Load::Closed {
            iterations,
            concurrency,
        })
    }

    /// This load as shard `shard` runs it: its share of the iterations, the workers and every
    /// stage's rate, the arrivals interleaved with the other shards' so that together they are the
    /// whole schedule.
    pub fn sharded(mut self, shard: Shard) -> Self {
        self.shard = shard;
        self
    }

    pub fn shard(&self) -> Shard {
        self.shard
    }

    pub fn model(&self) -> LoadModel {
        self.model
    }

    /// Whether iterations have intended start times (open and stepped loads).
    pub fn is_scheduled(&self) -> bool {
        self.model.is_scheduled()
    }

    /// Iterations this shard plans to start.
    pub fn planned(&self) -> u64 {
        self.shard.share_of(self.iterations)
    }

    /// Iterations of the whole load, every shard's together: what the global iteration numbers
    /// (and the faults drawn for them) range over.
    pub fn planned_overall(&self) -> u64 {
        self.iterations
    }

    /// Closed: this shard's workers; open and stepped: its bound on iterations in flight.
    pub fn concurrency(&self) -> u32 {
        self.shard.split(self.concurrency.max(1))
    }

    /// Workers the pool runs: never more than there are iterations.
    pub fn workers(&self) -> usize {
        let bound = self.concurrency() as usize;
        match self.model {
            LoadModel::Stepped => bound,
            LoadModel::Closed | LoadModel::Open => bound.min(self.planned().max(1) as usize),
        }
    }

    /// The stages judged one by one (a stepped load's), as this shard runs them: its share of each
    /// stage's rate, iterations and in-flight bound. Empty for other models.
    pub fn judged_stages(&self) -> Vec<OpenStage> {
        if self.model != LoadModel::Stepped {
            return Vec::new();
        }
        let count = f64::from(self.shard.count.max(1));
        let mut first = 0;
        self.stages
            .iter()
            .map(|s| {
                let end = first + s.iterations;
                let share = self.shard.share_of(end) - self.shard.share_of(first);
                first = end;
                OpenStage {
                    rate: Rate::per_second(s.rate.per_second / count),
                    duration: s.duration,
                    iterations: share,
                    max_in_flight: self.shard.split(s.max_in_flight.max(1)),
                }
            })
            .collect()
    }

    /// How long the schedule lasts (open and stepped loads).
    pub fn scheduled_duration(&self) -> Option<Duration> {
        self.is_scheduled()
            .then(|| self.stages.iter().map(|s| s.duration).sum())
    }

    /// The arrival rate the schedule intends on average, per second (open and stepped loads).
    pub fn intended_rate(&self) -> Option<f64> {
        let secs = self.scheduled_duration()?.as_secs_f64();
        Some(if secs > 0.0 {
            self.planned() as f64 / secs
        } else {
            0.0
        })
    }

    /// An open load's one rate (this shard's share of it), per second.
    pub fn rate_per_s(&self) -> Option<f64> {
        (self.model == LoadModel::Open)
            .then(|| self.stages[0].rate.per_second / f64::from(self.shard.count.max(1)))
    }

    /// A stepped load's stages as `result.json` lists them.
    pub fn stage_plans(&self) -> Vec<StagePlan> {
        self.judged_stages()
            .iter()
            .map(|s| StagePlan {
                rate_per_s: s.rate.per_second,
                duration_s: s.duration.as_secs_f64(),
                iterations: s.iterations,
            })
            .collect()
    }

    /// The schedule of this load, its first iteration due at `t0`.
    pub fn schedule(&self, t0: Instant) -> Arc<dyn Schedule> {
        match self.model {
            LoadModel::Closed => Arc::new(ClosedLoop::shard(
                self.iterations,
                self.concurrency,
                self.shard,
            )),
            LoadModel::Open => Arc::new(OpenLoop::shard(&self.stages[0], t0, self.shard)),
            LoadModel::Stepped => Arc::new(SteppedLoad::shard(&self.stages, t0, self.shard)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stage(rate: f64, secs: u64, in_flight: u32) -> OpenStage {
        OpenStage {
            rate: Rate::per_second(rate),
            duration: Duration::from_secs(secs),
            iterations: (rate * secs as f64) as u64,
            max_in_flight: in_flight,
        }
    }

    #[test]
    fn each_model_resolves_to_its_schedule() {
        let t0 = Instant::now();
        let closed = LoadPlan::closed(3, 10);
        assert_eq!(closed.model(), LoadModel::Closed);
        assert_eq!(
            (
                closed.workers(),
                closed.planned(),
                closed.scheduled_duration()
            ),
            (3, 3, None),
            "no more workers than iterations; no schedule"
        );
        assert_eq!(closed.schedule(t0).next().unwrap().intended, None);
        assert!(closed.judged_stages().is_empty() && closed.intended_rate().is_none());

        let open = LoadPlan::from(&Load::Open(stage(20.0, 2, 4)));
        assert!(open.is_scheduled());
        assert_eq!((open.workers(), open.planned()), (4, 40));
        assert_eq!(open.rate_per_s(), Some(20.0));
        assert_eq!(open.schedule(t0).next().unwrap().intended, Some(t0));
        assert!(
            open.judged_stages().is_empty(),
            "one stage is not judged apart"
        );

        let stepped = LoadPlan::from(&Load::Stepped {
            stages: vec![stage(2.0, 2, 3), stage(4.0, 2, 8)],
            stress_factor: Some(2.0),
        });
        assert_eq!((stepped.workers(), stepped.planned()), (8, 12));
        assert_eq!(stepped.scheduled_duration(), Some(Duration::from_secs(4)));
        assert_eq!(stepped.intended_rate(), Some(3.0));
        assert_eq!(stepped.judged_stages().len(), 2);
        assert_eq!(stepped.schedule(t0).planned(), 12);
    }

    #[test]
    fn a_shard_answers_for_its_part_of_the_load() {
        let t0 = Instant::now();
        let stepped = LoadPlan::from(&Load::Stepped {
            stages: vec![stage(10.0, 2, 6), stage(20.0, 2, 9)],
            stress_factor: None,
        });
        let parts: Vec<LoadPlan> = (0..4)
            .map(|index| stepped.clone().sharded(Shard { index, count: 4 }))
            .collect();
        assert_eq!(parts.iter().map(LoadPlan::planned).sum::<u64>(), 60);
        assert!(parts.iter().all(|p| p.planned_overall() == 60));
        for stage in 0..2 {
            let stages: Vec<OpenStage> = parts.iter().map(|p| p.judged_stages()[stage]).collect();
            let whole = stepped.judged_stages()[stage];
            assert_eq!(
                stages.iter().map(|s| s.iterations).sum::<u64>(),
                whole.iterations
            );
            let rate: f64 = stages.iter().map(|s| s.rate.per_second).sum();
            assert!((rate - whole.rate.per_second).abs() < 1e-9, "{rate}");
        }
        assert_eq!(
            parts
                .iter()
                .map(|p| p.schedule(t0).planned())
                .collect::<Vec<_>>(),
            parts.iter().map(LoadPlan::planned).collect::<Vec<_>>()
        );
        assert_eq!(
            parts[0].workers(),
            3,
            "9 in flight over 4 shards: 3, 2, 2, 2"
        );
        let open =
            LoadPlan::from(&Load::Open(stage(20.0, 2, 4))).sharded(Shard { index: 1, count: 2 });
        assert_eq!(open.rate_per_s(), Some(10.0));
        assert_eq!(open.intended_rate(), Some(10.0));
    }
}
