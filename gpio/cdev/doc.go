// Package cdev is an input line of the Linux GPIO character device
// (/dev/gpiochipN, uAPI v2) that keeps what periph's gpioioctl throws away:
// each edge as the kernel recorded it, with its direction, its
// CLOCK_MONOTONIC timestamp and its sequence number.
//
// A Line implements periph's gpio.PinIn, so it goes wherever a pin does, and
// adds NextEdge and Now: a reader that falls behind (a busy Pi) still learns
// when each queued edge happened and which way it went, instead of reading
// the level after the fact. The kernel keeps up to EventBuffer edges for a
// reader that is late and then drops the oldest; Edge.Lost counts those, from
// the gap in the line's sequence numbers.
//
// Only inputs: LEDs stay on periph. Halt is sticky (a wait that starts after
// it returns at once) until the next In, so a Halt racing a wait is never
// lost. Off Linux, Open fails with ErrUnsupported.
package cdev
