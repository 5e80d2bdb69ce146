// Package eval owns the evaluation harness behind `steergate eval`: it runs
// steering settings over a prompt set and several seeds through the
// gateway's own engine (with the response cache off), judges every final
// answer with one reward, and summarizes each setting with
// prompt-clustered bootstrap intervals, a Markdown table, a CSV of every
// run and a plot of reward against backend tokens.
package eval
