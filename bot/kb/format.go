package kb

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/xuri/excelize/v2"
	"gopkg.in/yaml.v3"
)

// Format is a knowledge-base file format.
type Format string

// Supported formats.
const (
	XLSX  Format = "xlsx"
	CSV   Format = "csv"
	JSONL Format = "jsonl"
	YAML  Format = "yaml"
)

// FormatOf picks the format from a file name's extension.
func FormatOf(path string) (Format, error) {
	switch strings.ToLower(filepath.Ext(path)) {
	case ".xlsx":
		return XLSX, nil
	case ".csv":
		return CSV, nil
	case ".jsonl", ".ndjson", ".json":
		return JSONL, nil
	case ".yaml", ".yml":
		return YAML, nil
	}
	return "", fmt.Errorf("kb: unknown format of %q (want .xlsx, .csv, .jsonl or .yaml)", path)
}

// MaxImportBytes caps an import file: a KB of 100k entries is ~50 MB.
const MaxImportBytes = 256 << 20

// ImportOptions configures Import.
type ImportOptions struct {
	Validate ValidateOptions
	// Progress, when set, is called as rows are parsed and validated.
	Progress func(done, total int)
}

// ReadFile imports a knowledge-base file, picking the format from its name.
func ReadFile(path string, opt ImportOptions) ([]Entry, error) {
	f, err := FormatOf(path)
	if err != nil {
		return nil, err
	}
	fh, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	return Import(fh, f, opt)
}

// WriteFile exports entries to path in the format its name says, atomically.
func WriteFile(path string, entries []Entry) error {
	f, err := FormatOf(path)
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".kb-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	w := bufio.NewWriter(tmp)
	if err := Export(w, f, entries); err != nil {
		tmp.Close()
		return err
	}
	if err := w.Flush(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// Import parses and validates a whole file. On any problem it returns an
// *ImportError listing every bad row and column, and no entries: an import
// never applies half a file.
func Import(r io.Reader, f Format, opt ImportOptions) ([]Entry, error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxImportBytes+1))
	if err != nil {
		return nil, err
	}
	if len(data) > MaxImportBytes {
		return nil, fmt.Errorf("kb import: file larger than %d bytes", MaxImportBytes)
	}
	var (
		entries []Entry
		rows    []int
		errs    []FieldError
	)
	switch f {
	case JSONL:
		entries, rows, errs = parseJSONL(data)
	case YAML:
		entries, rows, errs = parseYAML(data)
	case CSV:
		var recs [][]string
		recs, err = csv.NewReader(bytes.NewReader(bytes.TrimPrefix(data, []byte("\xef\xbb\xbf")))).ReadAll()
		if err != nil {
			var pe *csv.ParseError
			if errors.As(err, &pe) {
				return nil, &ImportError{Errors: []FieldError{{Row: pe.Line, Column: strconv.Itoa(pe.Column), Msg: pe.Err.Error()}}}
			}
			return nil, err
		}
		entries, rows, errs = parseTable(recs, opt.Progress)
	case XLSX:
		entries, rows, errs, err = parseXLSX(data, opt.Progress)
		if err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("kb import: unknown format %q", f)
	}
	if opt.Progress != nil {
		opt.Progress(len(entries), len(entries))
	}
	if verr := ValidateAll(entries, rows, opt.Validate); verr != nil {
		var ie *ImportError
		errors.As(verr, &ie)
		errs = append(errs, ie.Errors...)
	}
	if len(errs) > 0 {
		return nil, &ImportError{Errors: errs}
	}
	return entries, nil
}

// jsonEntry accepts valid_until as a date or a timestamp.
type jsonEntry struct {
	Entry      `yaml:",inline"`
	ValidUntil string `json:"valid_until,omitempty" yaml:"valid_until,omitempty"`
}

func parseJSONL(data []byte) ([]Entry, []int, []FieldError) {
	var (
		entries []Entry
		rows    []int
		errs    []FieldError
	)
	for i, line := range bytes.Split(data, []byte("\n")) {
		line = bytes.TrimSpace(line)
		if i == 0 {
			line = bytes.TrimPrefix(line, []byte("\xef\xbb\xbf"))
		}
		if len(line) == 0 {
			continue
		}
		var je jsonEntry
		dec := json.NewDecoder(bytes.NewReader(line))
		if err := dec.Decode(&je); err != nil {
			col := "json"
			var te *json.UnmarshalTypeError
			if errors.As(err, &te) && te.Field != "" {
				col = te.Field
			}
			errs = append(errs, FieldError{i + 1, col, err.Error()})
			continue
		}
		e := je.Entry
		if t, err := parseTime(je.ValidUntil); err != nil {
			errs = append(errs, FieldError{i + 1, "valid_until", err.Error()})
		} else {
			e.ValidUntil = t
		}
		entries = append(entries, e)
		rows = append(rows, i+1)
	}
	return entries, rows, errs
}

func parseYAML(data []byte) ([]Entry, []int, []FieldError) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, nil, []FieldError{{0, "yaml", err.Error()}}
	}
	if len(doc.Content) == 0 {
		return nil, nil, nil
	}
	root := doc.Content[0]
	// Accept both a bare list and {entries: [...]}.
	if root.Kind == yaml.MappingNode {
		for i := 0; i+1 < len(root.Content); i += 2 {
			if root.Content[i].Value == "entries" {
				root = root.Content[i+1]
				break
			}
		}
	}
	if root.Kind != yaml.SequenceNode {
		return nil, nil, []FieldError{{root.Line, "yaml", "want a list of entries or {entries: [...]}"}}
	}
	var (
		entries []Entry
		rows    []int
		errs    []FieldError
	)
	for _, n := range root.Content {
		var je jsonEntry
		if err := n.Decode(&je); err != nil {
			errs = append(errs, FieldError{n.Line, "yaml", err.Error()})
			continue
		}
		e := je.Entry
		if t, err := parseTime(je.ValidUntil); err != nil {
			errs = append(errs, FieldError{n.Line, "valid_until", err.Error()})
		} else {
			e.ValidUntil = t
		}
		entries = append(entries, e)
		rows = append(rows, n.Line)
	}
	return entries, rows, errs
}

func parseTime(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}, nil
	}
	for _, layout := range []string{time.RFC3339, "2006-01-02 15:04:05", "2006-01-02", "2006/01/02", "2006/1/2"} {
		if t, err := time.ParseInLocation(layout, s, time.Local); err == nil {
			if layout == "2006-01-02" || layout == "2006/01/02" || layout == "2006/1/2" {
				// A date means "valid through that day".
				t = t.AddDate(0, 0, 1)
			}
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("want a date (2006-01-02) or RFC 3339 time, got %q", s)
}

// Columns is the column order of tabular exports.
var Columns = []string{"id", "question", "similar", "answer", "image", "link", "category", "stores", "visibility", "status", "valid_until", "version", "author"}

// headerAliases lets editors use Chinese headers in Excel.
var headerAliases = map[string]string{
	"编号": "id", "标准问题": "question", "问题": "question", "相似问题": "similar", "相似问": "similar",
	"答案": "answer", "图片": "image", "链接": "link", "分类": "category", "门店": "stores",
	"可见性": "visibility", "状态": "status", "有效期": "valid_until", "版本": "version", "作者": "author",
}

// listSep splits multi-valued cells: one per line, or separated by "|".
func splitList(s string) []string {
	f := strings.FieldsFunc(s, func(r rune) bool { return r == '\n' || r == '|' || r == '｜' })
	out := f[:0]
	for _, x := range f {
		if x = strings.TrimSpace(x); x != "" {
			out = append(out, x)
		}
	}
	return out
}

func parseTable(recs [][]string, progress func(int, int)) ([]Entry, []int, []FieldError) {
	if len(recs) == 0 {
		return nil, nil, []FieldError{{1, "header", "empty file"}}
	}
	col := map[string]int{}
	var errs []FieldError
	for i, h := range recs[0] {
		h = strings.ToLower(strings.TrimSpace(strings.TrimPrefix(h, "\ufeff")))
		if a, ok := headerAliases[h]; ok {
			h = a
		}
		if _, dup := col[h]; dup {
			errs = append(errs, FieldError{1, h, "duplicate column"})
		}
		known := false
		for _, c := range Columns {
			known = known || c == h
		}
		if !known {
			errs = append(errs, FieldError{1, h, "unknown column (want " + strings.Join(Columns, ", ") + ")"})
		}
		col[h] = i
	}
	for _, req := range []string{"id", "question", "answer"} {
		if _, ok := col[req]; !ok {
			errs = append(errs, FieldError{1, req, "missing column"})
		}
	}
	if len(errs) > 0 {
		return nil, nil, errs
	}
	get := func(rec []string, name string) string {
		if i, ok := col[name]; ok && i < len(rec) {
			return strings.TrimSpace(rec[i])
		}
		return ""
	}
	var (
		entries []Entry
		rows    []int
	)
	for r, rec := range recs[1:] {
		row := r + 2
		if progress != nil && r%1000 == 0 {
			progress(r, len(recs)-1)
		}
		empty := true
		for _, c := range rec {
			empty = empty && strings.TrimSpace(c) == ""
		}
		if empty {
			continue
		}
		e := Entry{
			ID: get(rec, "id"), Question: get(rec, "question"), Similar: splitList(get(rec, "similar")),
			Answer: get(rec, "answer"), Image: get(rec, "image"), Link: get(rec, "link"),
			Category: get(rec, "category"), Stores: splitList(strings.ReplaceAll(get(rec, "stores"), ",", "|")),
			Visibility: Visibility(strings.ToLower(get(rec, "visibility"))), Status: Status(strings.ToLower(get(rec, "status"))),
			Author: get(rec, "author"),
		}
		if t, err := parseTime(get(rec, "valid_until")); err != nil {
			errs = append(errs, FieldError{row, "valid_until", err.Error()})
		} else {
			e.ValidUntil = t
		}
		if v := get(rec, "version"); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil {
				errs = append(errs, FieldError{row, "version", "not an integer: " + v})
			}
			e.Version = n
		}
		entries = append(entries, e)
		rows = append(rows, row)
	}
	return entries, rows, errs
}

func parseXLSX(data []byte, progress func(int, int)) ([]Entry, []int, []FieldError, error) {
	f, err := excelize.OpenReader(bytes.NewReader(data))
	if err != nil {
		return nil, nil, nil, fmt.Errorf("kb import: not an .xlsx file: %w", err)
	}
	defer f.Close()
	sheets := f.GetSheetList()
	if len(sheets) == 0 {
		return nil, nil, []FieldError{{0, "sheet", "workbook has no sheet"}}, nil
	}
	recs, err := f.GetRows(sheets[0])
	if err != nil {
		return nil, nil, nil, fmt.Errorf("kb import: %w", err)
	}
	e, r, errs := parseTable(recs, progress)
	return e, r, errs, nil
}

func tableRow(e *Entry) []string {
	vu := ""
	if !e.ValidUntil.IsZero() {
		vu = e.ValidUntil.Format(time.RFC3339)
	}
	return []string{e.ID, e.Question, strings.Join(e.Similar, "\n"), e.Answer, e.Image, e.Link, e.Category,
		strings.Join(e.Stores, "|"), string(e.Visibility), string(e.Status), vu, strconv.Itoa(e.Version), e.Author}
}

// Export writes entries in format f.
func Export(w io.Writer, f Format, entries []Entry) error {
	switch f {
	case JSONL:
		enc := json.NewEncoder(w)
		enc.SetEscapeHTML(false)
		for i := range entries {
			if err := enc.Encode(&entries[i]); err != nil {
				return err
			}
		}
		return nil
	case YAML:
		enc := yaml.NewEncoder(w)
		enc.SetIndent(2)
		out := make([]jsonEntry, len(entries))
		for i, e := range entries {
			out[i].Entry = e
			if !e.ValidUntil.IsZero() {
				out[i].ValidUntil = e.ValidUntil.Format(time.RFC3339)
			}
		}
		if err := enc.Encode(out); err != nil {
			return err
		}
		return enc.Close()
	case CSV:
		// A BOM makes Excel open UTF-8 CSV correctly.
		if _, err := io.WriteString(w, "\ufeff"); err != nil {
			return err
		}
		cw := csv.NewWriter(w)
		if err := cw.Write(Columns); err != nil {
			return err
		}
		for i := range entries {
			if err := cw.Write(tableRow(&entries[i])); err != nil {
				return err
			}
		}
		cw.Flush()
		return cw.Error()
	case XLSX:
		x := excelize.NewFile()
		defer x.Close()
		sheet := x.GetSheetName(0)
		sw, err := x.NewStreamWriter(sheet)
		if err != nil {
			return err
		}
		row := func(n int, vals []string) error {
			cells := make([]any, len(vals))
			for i, v := range vals {
				cells[i] = v
			}
			cell, _ := excelize.CoordinatesToCellName(1, n)
			return sw.SetRow(cell, cells)
		}
		if err := row(1, Columns); err != nil {
			return err
		}
		for i := range entries {
			if err := row(i+2, tableRow(&entries[i])); err != nil {
				return err
			}
		}
		if err := sw.Flush(); err != nil {
			return err
		}
		_, err = x.WriteTo(w)
		return err
	}
	return fmt.Errorf("kb export: unknown format %q", f)
}
