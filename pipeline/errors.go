package pipeline

import "fmt"

// AttrError points a Validate error at one attribute of the block.
type AttrError struct {
	Attr string
	Err  error
}

func (e *AttrError) Error() string { return fmt.Sprintf("%s: %v", e.Attr, e.Err) }
func (e *AttrError) Unwrap() error { return e.Err }

// ErrorAt wraps err so that its diagnostic points at the attribute attr.
func ErrorAt(attr string, err error) error {
	if err == nil {
		return nil
	}
	return &AttrError{Attr: attr, Err: err}
}

// BlockError points an error at a nested block: the index-th (from 0)
// block of type Block in the body. Err may itself point at an attribute
// of that block (ErrorAt) or at a block nested in it.
type BlockError struct {
	Block string
	Index int
	Err   error
}

func (e *BlockError) Error() string {
	return fmt.Sprintf("%s block %d: %v", e.Block, e.Index+1, e.Err)
}
func (e *BlockError) Unwrap() error { return e.Err }

// ErrorInBlock wraps err so that its diagnostic points into the index-th
// (from 0) nested block of type block: for errors that Validate or
// Provision of the whole Arguments find in one of its blocks (a rule whose
// regex does not compile is found when all rules are compiled together).
func ErrorInBlock(block string, index int, err error) error {
	if err == nil {
		return nil
	}
	return &BlockError{Block: block, Index: index, Err: err}
}
