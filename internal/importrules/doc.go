// Package importrules has no code: its tests check the project's import
// rules (pure Go where it must be, no transport in the broadcast hub).
package importrules
