//! Test automation of the window: `TELENODE_GUI_SCRIPT` names steps that
//! are turned into the same [`UserAction`]s a click makes, each when the
//! window is ready for it, so automated runs go through the real screens.
//!
//! Steps, comma-separated: `sign-in` (with the form as filled from flags,
//! settings and `TELENODE_PASSWORD`), `new-consultation`, `admit` (when a
//! patient waits), `mute`, `camera-off`, `hang-up` (once the call is
//! connected), `done` (leave the ended screen), `quit` (close the window).

use std::collections::VecDeque;

use super::state::{Screen, State, UserAction};

/// One scripted step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    SignIn,
    NewConsultation,
    Admit,
    Mute,
    CameraOff,
    HangUp,
    Done,
    Quit,
}

/// What the script wants now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    Action(UserAction),
    Quit,
}

/// The remaining steps.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Script {
    steps: VecDeque<Step>,
}

impl Script {
    /// Parses `sign-in,new-consultation,admit`; names the bad step.
    pub fn parse(text: &str) -> Result<Script, String> {
        let steps = text
            .split([',', ';', '\n'])
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| match s {
                "sign-in" => Ok(Step::SignIn),
                "new-consultation" => Ok(Step::NewConsultation),
                "admit" => Ok(Step::Admit),
                "mute" => Ok(Step::Mute),
                "camera-off" => Ok(Step::CameraOff),
                "hang-up" => Ok(Step::HangUp),
                "done" => Ok(Step::Done),
                "quit" => Ok(Step::Quit),
                other => Err(format!("unknown step {other:?} in TELENODE_GUI_SCRIPT")),
            })
            .collect::<Result<_, _>>()?;
        Ok(Script { steps })
    }

    pub fn is_done(&self) -> bool {
        self.steps.is_empty()
    }

    /// The next step's action if the window is ready for it (the step is
    /// then consumed); `None` to wait.
    pub fn next(&mut self, state: &State) -> Option<Next> {
        let step = *self.steps.front()?;
        let connected = state
            .active
            .as_ref()
            .is_some_and(|a| a.call.connected_at.is_some());
        let next = match step {
            Step::Quit => Some(Next::Quit),
            Step::HangUp if !connected => None,
            step => {
                let action = match step {
                    Step::SignIn => UserAction::SignIn,
                    Step::NewConsultation => UserAction::NewConsultation,
                    Step::Admit => UserAction::Admit,
                    Step::Mute => UserAction::ToggleMute,
                    Step::CameraOff => UserAction::ToggleCamera,
                    Step::HangUp => UserAction::HangUp,
                    Step::Done | Step::Quit => UserAction::Done,
                };
                // Sign-in waits for a restored session attempt to finish.
                let ready = state.allows(&action)
                    && !(step == Step::SignIn && state.screen != Screen::SignIn);
                ready.then_some(Next::Action(action))
            }
        };
        if next.is_some() {
            self.steps.pop_front();
        }
        next
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::time::Instant;

    use super::*;
    use crate::client::AgentEvent;
    use crate::doctor::state::{NetEvent, SignInForm};

    #[test]
    fn parses_and_names_bad_steps() {
        let s = Script::parse(" sign-in, new-consultation;admit\nquit ").unwrap();
        assert_eq!(s.steps.len(), 4);
        assert!(Script::parse("sign-in,fly").unwrap_err().contains("fly"));
        assert!(Script::parse("").unwrap().is_done());
    }

    #[test]
    fn steps_wait_until_the_window_is_ready() {
        let t = Instant::now();
        let form = SignInForm {
            node: "http://n".into(),
            login: "dr".into(),
            password: "pw".into(),
            code: "123456".into(),
            code_from_secret: false,
        };
        let mut state = State::new(form, false, false);
        let mut script = Script::parse("sign-in,new-consultation,admit,hang-up,done,quit").unwrap();
        assert_eq!(script.next(&state), Some(Next::Action(UserAction::SignIn)));
        state.handle_action(t, UserAction::SignIn);
        // Busy signing in: the next step waits.
        assert_eq!(script.next(&state), None);
        state.handle_event(
            t,
            NetEvent::SignedIn {
                node: "http://n".into(),
                login: "dr".into(),
            },
        );
        assert_eq!(
            script.next(&state),
            Some(Next::Action(UserAction::NewConsultation))
        );
        state.handle_action(t, UserAction::NewConsultation);
        state.handle_event(
            t,
            NetEvent::ConsultationCreated {
                id: "c".into(),
                url: "u".into(),
            },
        );
        assert_eq!(script.next(&state), None, "nobody waits yet");
        state.handle_event(t, NetEvent::Agent(AgentEvent::PatientWaiting));
        assert_eq!(script.next(&state), Some(Next::Action(UserAction::Admit)));
        state.handle_action(t, UserAction::Admit);
        state.handle_event(t, NetEvent::Agent(AgentEvent::Admitted));
        assert_eq!(script.next(&state), None, "hang up waits for the media");
        state.handle_event(
            t,
            NetEvent::Agent(AgentEvent::Connected {
                local_candidate: "host".into(),
                remote_candidate: "host".into(),
                sas: "000000".into(),
            }),
        );
        assert_eq!(script.next(&state), Some(Next::Action(UserAction::HangUp)));
        state.handle_event(
            t,
            NetEvent::Agent(AgentEvent::Ended(crate::client::EndCause::Completed)),
        );
        assert_eq!(script.next(&state), Some(Next::Action(UserAction::Done)));
        assert_eq!(script.next(&state), Some(Next::Quit));
        assert!(script.is_done());
    }
}
