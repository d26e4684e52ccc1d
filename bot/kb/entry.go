// Package kb holds the knowledge base model (Entry), its validation, and
// import/export in the formats operations staff use: .xlsx, CSV, JSONL, YAML.
package kb

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Visibility says who may see an entry.
type Visibility string

// Visibilities.
const (
	Customer  Visibility = "customer" // may be sent to customers
	AgentOnly Visibility = "agent"    // internal: shown to agents only
)

// Status is an entry's lifecycle state.
type Status string

// Statuses.
const (
	Draft     Status = "draft"
	Published Status = "published"
	Retired   Status = "retired"
)

// Entry is one knowledge-base item.
type Entry struct {
	ID       string   `json:"id" yaml:"id"`
	Question string   `json:"question" yaml:"question"`
	Similar  []string `json:"similar,omitempty" yaml:"similar,omitempty"`
	Answer   string   `json:"answer" yaml:"answer"`
	// Image is an optional picture sent with the answer (URL or media id).
	Image string `json:"image,omitempty" yaml:"image,omitempty"`
	// Link is an optional URL sent with the answer as a news card.
	Link     string `json:"link,omitempty" yaml:"link,omitempty"`
	Category string `json:"category,omitempty" yaml:"category,omitempty"`
	// Stores limits the entry to these stores; empty means every store.
	Stores     []string   `json:"stores,omitempty" yaml:"stores,omitempty"`
	Visibility Visibility `json:"visibility,omitempty" yaml:"visibility,omitempty"`
	Status     Status     `json:"status,omitempty" yaml:"status,omitempty"`
	// ValidUntil is the end of validity; zero means forever.
	ValidUntil time.Time `json:"valid_until,omitzero" yaml:"-"`
	Version    int       `json:"version,omitempty" yaml:"version,omitempty"`
	Author     string    `json:"author,omitempty" yaml:"author,omitempty"`
}

// Normalize fills defaults (customer, published, version 1) and trims text.
func (e *Entry) Normalize() {
	e.ID = strings.TrimSpace(e.ID)
	e.Question = strings.TrimSpace(e.Question)
	e.Answer = strings.TrimSpace(e.Answer)
	e.Category = strings.TrimSpace(e.Category)
	sim := e.Similar[:0:0]
	for _, s := range e.Similar {
		if s = strings.TrimSpace(s); s != "" && s != e.Question && !slices.Contains(sim, s) {
			sim = append(sim, s)
		}
	}
	e.Similar = sim
	stores := e.Stores[:0:0]
	for _, s := range e.Stores {
		if s = strings.TrimSpace(s); s != "" && !slices.Contains(stores, s) {
			stores = append(stores, s)
		}
	}
	e.Stores = stores
	if e.Visibility == "" {
		e.Visibility = Customer
	}
	if e.Status == "" {
		e.Status = Published
	}
	if e.Version == 0 {
		e.Version = 1
	}
}

// Questions returns the standard question followed by the similar ones.
func (e *Entry) Questions() []string {
	return append([]string{e.Question}, e.Similar...)
}

// InStore reports whether the entry applies to store ("" = no store known:
// only entries for every store apply).
func (e *Entry) InStore(store string) bool {
	return len(e.Stores) == 0 || (store != "" && slices.Contains(e.Stores, store))
}

// Live reports whether the entry is published and not expired at now.
func (e *Entry) Live(now time.Time) bool {
	return e.Status == Published && (e.ValidUntil.IsZero() || now.Before(e.ValidUntil))
}

// CustomerServable reports whether the bot may send the entry to a customer
// of store at now: published, unexpired, customer-visible and in scope.
func (e *Entry) CustomerServable(store string, now time.Time) bool {
	return e.Live(now) && e.Visibility == Customer && e.InStore(store)
}

// Hash fingerprints the fields that affect indexing and filtering, so that
// publishing re-indexes only entries whose hash changed.
func (e *Entry) Hash() string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s\x00%q\x00%s\x00%q\x00%s\x00%s\x00%d\x00%s\x00%s\x00%s",
		e.ID, e.Question, e.Similar, e.Category, e.Stores, e.Visibility, e.Status,
		e.ValidUntil.Unix(), e.Answer, e.Image, e.Link)
	return hex.EncodeToString(h.Sum(nil)[:12])
}

// FieldError is one validation problem, located by row (1-based data row as
// the editor sees it; for xlsx/CSV the header is row 1) and column name.
type FieldError struct {
	Row    int
	Column string
	Msg    string
}

// Error implements error.
func (e FieldError) Error() string {
	if e.Row > 0 {
		return fmt.Sprintf("row %d, column %s: %s", e.Row, e.Column, e.Msg)
	}
	return fmt.Sprintf("column %s: %s", e.Column, e.Msg)
}

// ImportError lists every problem of a file; nothing was imported.
type ImportError struct {
	Errors []FieldError
}

// Error lists the first 20 problems.
func (e *ImportError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "kb import: %d error(s), nothing imported", len(e.Errors))
	for i, fe := range e.Errors {
		if i == 20 {
			fmt.Fprintf(&b, "; … %d more", len(e.Errors)-20)
			break
		}
		b.WriteString("; ")
		b.WriteString(fe.Error())
	}
	return b.String()
}

// ValidateOptions relaxes validation.
type ValidateOptions struct {
	// AllowEmptyAnswer accepts published entries without an answer
	// (evaluation sets have none).
	AllowEmptyAnswer bool
}

// Validate checks one entry and returns its problems with row set to row.
func (e *Entry) Validate(row int, opt ValidateOptions) []FieldError {
	var errs []FieldError
	add := func(col, f string, a ...any) { errs = append(errs, FieldError{row, col, fmt.Sprintf(f, a...)}) }
	if e.ID == "" {
		add("id", "required")
	} else if strings.ContainsAny(e.ID, " \t\r\n,") || len(e.ID) > 128 {
		add("id", "must be at most 128 characters without spaces or commas")
	}
	if e.Question == "" {
		add("question", "required")
	} else if len([]rune(e.Question)) > 500 {
		add("question", "longer than 500 characters")
	}
	if e.Answer == "" && e.Status == Published && !opt.AllowEmptyAnswer {
		add("answer", "required for a published entry")
	}
	switch e.Visibility {
	case Customer, AgentOnly:
	default:
		add("visibility", "must be customer or agent, got %q", e.Visibility)
	}
	switch e.Status {
	case Draft, Published, Retired:
	default:
		add("status", "must be draft, published or retired, got %q", e.Status)
	}
	if e.Version < 0 {
		add("version", "must be positive")
	}
	for _, l := range []struct{ col, v string }{{"image", e.Image}, {"link", e.Link}} {
		if l.v != "" && l.col == "link" && !strings.HasPrefix(l.v, "http://") && !strings.HasPrefix(l.v, "https://") {
			add(l.col, "must be an http(s) URL")
		}
	}
	return errs
}

// ValidateAll normalises and validates entries (rows[i] is entry i's row
// number, or i+1 when rows is nil), including duplicate ids.
func ValidateAll(entries []Entry, rows []int, opt ValidateOptions) error {
	var errs []FieldError
	seen := make(map[string]int, len(entries))
	for i := range entries {
		row := i + 1
		if rows != nil {
			row = rows[i]
		}
		entries[i].Normalize()
		errs = append(errs, entries[i].Validate(row, opt)...)
		if id := entries[i].ID; id != "" {
			if first, ok := seen[id]; ok {
				errs = append(errs, FieldError{row, "id", fmt.Sprintf("duplicate of row %d", first)})
			} else {
				seen[id] = row
			}
		}
	}
	if len(errs) > 0 {
		return &ImportError{Errors: errs}
	}
	return nil
}
