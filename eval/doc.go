// Package eval owns the evaluation harness behind `steergate eval`: it runs
// steering settings over a prompt set (the shipped dev and test splits, or
// a file) and several seeds through the gateway's own engine with the
// response cache off, judges every final answer with one reward, adds
// budget-matched best-of-N baselines, and summarizes each setting with
// prompt-clustered bootstrap intervals, paired differences and shares of
// best-of-N's gain: a Markdown table, a CSV of every run and a plot of
// reward against backend tokens.
package eval
