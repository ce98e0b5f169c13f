//! What the tests send the detector: EventBridge envelopes from `tripwire-synth`, the
//! same record template the engine's tests and `tripwire generate` use.

pub use tripwire_synth::{
    eventbridge_envelope, seed_scenario, terminate_record, Burst, Call, Caller,
};
