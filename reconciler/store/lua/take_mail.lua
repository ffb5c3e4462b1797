-- An idle agent woken by its bell takes its mail (lib.lua's `take_mail`): every message of its
-- mailboxes, urgent first, moves to its `answering` list. ARGV[4]: agent, ARGV[5]: how many
-- `seen` keeps, ARGV[6]: '1' to keep them in `answering` until answered (an agent), '0' when read
-- by a person (`tt inbox`). Returns the whole `answering` list with '1' (the answer removes them:
-- store.mail.answer_mail), else what it took.
return take_mail(ARGV[4], ARGV[5], ARGV[6] == '1')
