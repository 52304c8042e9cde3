//! The load of a plan: which model paces it, how many iterations and workers, the stages of an open or
//! stepped schedule. This is the one place that matches on the load model; everything else asks the
//! plan's questions (is it scheduled? how many workers? how long?) and gets its [`Schedule`] from here.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::kinds::LoadModel;
use crate::result::StagePlan;
use crate::scenario::Load;
use crate::schedule::closed::ClosedLoop;
use crate::schedule::open::OpenLoop;
use crate::schedule::stepped::SteppedLoad;
use crate::schedule::{OpenStage, Schedule};

/// How iterations are paced.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadPlan {
    model: LoadModel,
    /// Iterations the load plans to start.
    iterations: u64,
    /// Closed: the workers; open and stepped: the bound on iterations in flight.
    concurrency: u32,
    /// Open: its one stage; stepped: every stage; closed: none.
    stages: Vec<OpenStage>,
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

    pub fn model(&self) -> LoadModel {
        self.model
    }

    /// Whether iterations have intended start times (open and stepped loads).
    pub fn is_scheduled(&self) -> bool {
        self.model.is_scheduled()
    }

    /// Iterations the load plans to start.
    pub fn planned(&self) -> u64 {
        self.iterations
    }

    /// Closed: the workers; open and stepped: the bound on iterations in flight.
    pub fn concurrency(&self) -> u32 {
        self.concurrency
    }

    /// Workers the pool runs: never more than there are iterations.
    pub fn workers(&self) -> usize {
        let bound = self.concurrency.max(1) as usize;
        match self.model {
            LoadModel::Stepped => bound,
            LoadModel::Closed | LoadModel::Open => bound.min(self.iterations.max(1) as usize),
        }
    }

    /// The stages judged one by one (a stepped load's); empty for other models.
    pub fn judged_stages(&self) -> &[OpenStage] {
        if self.model == LoadModel::Stepped {
            &self.stages
        } else {
            &[]
        }
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
            self.iterations as f64 / secs
        } else {
            0.0
        })
    }

    /// An open load's one rate, per second.
    pub fn rate_per_s(&self) -> Option<f64> {
        (self.model == LoadModel::Open).then(|| self.stages[0].rate.per_second)
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
            LoadModel::Closed => Arc::new(ClosedLoop::new(self.iterations, self.concurrency)),
            LoadModel::Open => Arc::new(OpenLoop::new(&self.stages[0], t0)),
            LoadModel::Stepped => Arc::new(SteppedLoad::new(&self.stages, t0)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::units::Rate;

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
}
