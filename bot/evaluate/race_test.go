//go:build race

package evaluate

// raceEnabled trims the slowest evaluation runs under the race detector
// (10× slower); the numbers do not depend on it.
const raceEnabled = true
