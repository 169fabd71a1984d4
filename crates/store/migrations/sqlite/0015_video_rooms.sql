-- Video consultations: every appointment gets, when it is made, the name of
-- its video room: 128 random bits the application draws, so that its link
-- (the configured provider's address and the room) cannot be guessed. A move
-- draws a new one (the store's update does); a cancelled appointment keeps
-- it, but no one is shown it any more. Appointments made before this
-- migration get theirs here, those still to come first.
ALTER TABLE appointments ADD COLUMN video_room TEXT;
UPDATE appointments SET video_room = lower(hex(randomblob(16)))
 WHERE status IN ('held', 'pending', 'booked', 'arrived');

-- A doctor may have a video room of their own (a fixed address), which their
-- online appointments then use instead.
ALTER TABLE doctors ADD COLUMN video_room_url TEXT;
