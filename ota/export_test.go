package ota

// SetStepHook lets tests stop the agent before any durable step, as a
// power cut would.
func SetStepHook(a *Agent, f func(step string) error) { a.step = f }
