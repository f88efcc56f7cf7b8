// Package gpiofake provides fakes for testing code built on the gpio package:
// a manual Clock and a Pin that plays a script of timestamped edges in
// virtual time.
//
// The fakes keep the rules of the real hardware path (periph's gpioioctl on
// the kernel GPIO character device) so that code passing its tests against
// them also works on a Pi: an input must be configured for edges before
// WaitForEdge, levels alternate from one edge to the next, a timeout of zero or
// less is refused because gpioioctl reads 0 as "forever" where periph's
// interface documents -1, and Halt only interrupts a wait already in progress.
// Breaking a rule is recorded and reported by Pin.Err.
package gpiofake
