package bot

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// RecordKind names a curation journal record.
type RecordKind string

// Journal record kinds. Decisions (fallback, clarify, answer, handoff) are
// written by Respond; the others come from customers (pick, rating) and
// agents (link, draft, approve, reject).
const (
	RecFallback RecordKind = "fallback"
	RecClarify  RecordKind = "clarify"
	RecAnswer   RecordKind = "answer"
	RecHandoff  RecordKind = "handoff"
	// RecPick: the customer chose option Entry after a clarify (a positive
	// label for Question → Entry); Entry "" means "none of them".
	RecPick RecordKind = "pick"
	// RecRating: the customer rated the answer Entry to Question.
	RecRating RecordKind = "rating"
	// RecLink: an agent proposes Question as a similar question of Entry.
	RecLink RecordKind = "link"
	// RecDraft: an agent proposes a new entry (Question, Answer).
	RecDraft RecordKind = "draft"
	// RecApprove / RecReject decide the suggestion Ref.
	RecApprove RecordKind = "approve"
	RecReject  RecordKind = "reject"
)

// Record is one curation journal line.
type Record struct {
	ID         string      `json:"id"`
	Kind       RecordKind  `json:"kind"`
	At         time.Time   `json:"at"`
	Question   string      `json:"q,omitempty"`
	Store      string      `json:"store,omitempty"`
	Customer   string      `json:"customer,omitempty"`
	Candidates []Candidate `json:"cands,omitempty"`
	Entry      string      `json:"entry,omitempty"`
	Score      float64     `json:"score,omitempty"`
	Helpful    *bool       `json:"helpful,omitempty"`
	Answer     string      `json:"answer,omitempty"`
	Agent      string      `json:"agent,omitempty"`
	Ref        string      `json:"ref,omitempty"`
	Reason     string      `json:"reason,omitempty"`
}

// Journal is the append-only curation log. Misses, ratings and suggestions
// all go here so that tuning and review read one source.
type Journal interface {
	Append(ctx context.Context, r Record) error
	Records(ctx context.Context) ([]Record, error)
}

func newID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// FileJournal is a Journal in a JSONL file (single process).
type FileJournal struct {
	mu   sync.Mutex
	path string
}

// NewFileJournal returns a journal appending to path.
func NewFileJournal(path string) *FileJournal { return &FileJournal{path: path} }

// Append implements Journal.
func (j *FileJournal) Append(_ context.Context, r Record) error {
	b, err := marshalRecord(r)
	if err != nil {
		return err
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if err := os.MkdirAll(filepath.Dir(j.path), 0o755); err != nil {
		return err
	}
	f, err := os.OpenFile(j.path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.Write(append(b, '\n')); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// Records implements Journal; unreadable lines (a torn last write) are skipped.
func (j *FileJournal) Records(_ context.Context) ([]Record, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	f, err := os.Open(j.path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []Record
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		var r Record
		if json.Unmarshal(sc.Bytes(), &r) == nil {
			out = append(out, r)
		}
	}
	return out, sc.Err()
}

// MemJournal is an in-memory Journal for tests and evaluation.
type MemJournal struct {
	mu   sync.Mutex
	recs []Record
}

// Append implements Journal.
func (j *MemJournal) Append(_ context.Context, r Record) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.recs = append(j.recs, r)
	return nil
}

// Records implements Journal.
func (j *MemJournal) Records(context.Context) ([]Record, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	return append([]Record(nil), j.recs...), nil
}
