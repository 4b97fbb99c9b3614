//! How a step ends a pass early: [`Halt::Done`] with the action the pass ends with (a wait, a
//! requeue, a refusal already reported) or [`Halt::Fail`] with the error. Steps return
//! [`Step<T>`] and use `?` for both; the pass maps the halt back with [`finish`].

use crate::controller::Error;
use crate::pve;
use kube::runtime::controller::Action;

/// Why a step did not give its value.
#[derive(Debug)]
pub enum Halt {
    /// The pass ends here, with this action (its status already written).
    Done(Action),
    /// The pass failed.
    Fail(Error),
}

/// What a step gives: its value, or why the pass ends here.
pub type Step<T> = Result<T, Halt>;

impl From<Error> for Halt {
    fn from(e: Error) -> Self {
        Halt::Fail(e)
    }
}

impl From<pve::Error> for Halt {
    fn from(e: pve::Error) -> Self {
        Halt::Fail(e.into())
    }
}

impl Halt {
    /// A pass's ending (`Ok(action)` or its error) as a halt: `return Err(Halt::end(p.not_ready(…).await))`.
    pub fn end(r: Result<Action, Error>) -> Halt {
        match r {
            Ok(a) => Halt::Done(a),
            Err(e) => Halt::Fail(e),
        }
    }
}

impl From<Halt> for Result<Action, Error> {
    /// The pass's result where a step halted it: `Err(halt) => return halt.into()`.
    fn from(h: Halt) -> Self {
        finish(Err(h))
    }
}

/// The pass's result from its last step: a halt with an action ends it well.
pub fn finish(step: Step<Action>) -> Result<Action, Error> {
    match step {
        Ok(a) | Err(Halt::Done(a)) => Ok(a),
        Err(Halt::Fail(e)) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn step(n: u32) -> Step<u32> {
        match n {
            0 => Err(Halt::Done(Action::requeue(Duration::from_secs(5)))),
            1 => Err(Error::Panic("boom".into()).into()),
            n => Ok(n),
        }
    }

    fn pass(n: u32) -> Step<Action> {
        let v = step(n)?;
        Ok(Action::requeue(Duration::from_secs(v.into())))
    }

    #[test]
    fn a_step_that_halts_ends_the_pass_with_its_action_or_its_error() {
        assert_eq!(finish(pass(0)).unwrap(), Action::requeue(Duration::from_secs(5)));
        assert!(finish(pass(1)).is_err());
        assert_eq!(finish(pass(7)).unwrap(), Action::requeue(Duration::from_secs(7)));
        assert_eq!(step(7).unwrap(), 7);
        assert!(matches!(Halt::end(Ok(Action::await_change())), Halt::Done(_)));
        let ended: Result<Action, Error> = Halt::Done(Action::await_change()).into();
        assert_eq!(ended.unwrap(), Action::await_change());
    }
}
