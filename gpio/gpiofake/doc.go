// Package gpiofake provides fakes for testing code built on the gpio package:
// a manual Clock, a Pin that plays a script of timestamped edges in virtual
// time, and an EdgePin that also reports each edge as the kernel recorded
// it, like cdev.Line.
//
// The fakes keep the rules of the real hardware path so that code passing
// its tests against them also works on a Pi. Pin is periph's gpioioctl on
// the kernel GPIO character device: an input must be configured for edges
// before WaitForEdge, levels alternate from one edge to the next, a timeout
// of zero or less is refused because gpioioctl reads 0 as "forever" where
// periph's interface documents -1, and Halt only interrupts a wait already in
// progress. EdgePin is cdev.Line: NextEdge with zero only looks, and Halt
// holds until the next In. Both queue edges as the kernel does and drop the
// oldest when the queue is full, and Stall makes their reader late. Breaking
// a rule is recorded and reported by Err.
package gpiofake
