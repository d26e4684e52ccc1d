// Package surveys sends an NPS survey after every eligible contact, parses
// the answer in chat, reports NPS, and closes the loop on detractors with a
// case owned by the store manager.
package surveys
