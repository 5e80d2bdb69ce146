package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/steergate/steergate/rm/tokenizer"
)

// tokenize reads a JSON array of strings and writes a JSON array of id
// arrays, without special tokens added, so users can check what their
// reward model reads.
func tokenize(args []string, in io.Reader, out io.Writer) error {
	fs := flag.NewFlagSet("tokenize", flag.ContinueOnError)
	file := fs.String("tokenizer", "", "tokenizer.json file")
	if err := parseAll(fs, args); err != nil {
		return err
	}
	if *file == "" {
		return errors.New("usage: steergate tokenize --tokenizer FILE < strings.json")
	}
	tok, err := tokenizer.Load(*file)
	if err != nil {
		return err
	}
	var texts []string
	if err := json.NewDecoder(in).Decode(&texts); err != nil {
		return fmt.Errorf("stdin must be a JSON array of strings: %w", err)
	}
	ids := make([][]int, len(texts))
	for i, t := range texts {
		ids[i] = tok.Encode(t)
		if ids[i] == nil {
			ids[i] = []int{}
		}
	}
	b, err := json.Marshal(ids)
	if err != nil {
		return err
	}
	_, err = out.Write(append(b, '\n'))
	return err
}
