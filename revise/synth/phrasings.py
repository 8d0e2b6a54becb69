"""Instruction templates ("phrasings") of the RVE-Synth v2 task families (:mod:`revise.synth.tasks`).

``PHRASINGS[family][subset]`` holds ten templates per family and subset (``"RAVE"``: edit the given
clip; ``"ICVG"``: generate the clip that follows). Templates are ``str.format`` strings over the
family's words (``{obj}``, ``{other}``, ``{anchor}``: object names such as "red circle" or "ice cube");
they start in lower case, and the item capitalises the first letter.

Indices 0-4 are the RVE-Synth v1 templates, unchanged and in their v1 order (``temporal/later`` had
six, so its index 5 is from v1 too), so that a v1 item's ``phrasing`` index still names its template;
the rest were added in v2, as was the family ``commonsense/drain`` (all ten of its templates are new).

Split of template ``p`` (:func:`revise.synth.tasks.phrasing_split`): ``train`` if ``p % 5 in (0, 1, 2)``,
``val`` if ``p % 5 == 3``, ``test`` if ``p % 5 == 4``. Every index-9 (test) template, and every index-8
(val) template, has at least one content word that no train template (indices 0, 1, 2, 5, 6, 7) of any
family uses ("postpone", "dwindles", "sundown", "tenfold", ...), so test instructions need wording that
training never showed. Keep it so when editing: a new train template must not use those words.
"""


PHRASINGS: dict[str, dict[str, tuple[str, ...]]] = {
    "temporal/later": {
        "RAVE": (
            "show the scene one second later",
            "make this clip start one second further into the action",
            "shift the clip forward in time by one second",
            "what would the camera have seen one second later?",
            "show the same moment of the scene, but a second afterwards",
            "play this clip as it would look if it began a second later",
            # added in v2 (6-7 train, 8 val, 9 test)
            "start the clip a second later than it does now",
            "move the clip one second ahead in time",
            "offset the start of the clip by one second into the future",
            "postpone the clip's start by exactly one second",
        ),
    },
    "temporal/earlier": {
        "RAVE": (
            "show the scene one second earlier",
            "move this clip one second back in time",
            "what did the scene look like a second before this?",
            "make the clip begin one second sooner",
            "rewind the clip by one second",
            # added in v2 (5-7 train, 8 val, 9 test)
            "start the clip a second before it currently does",
            "hey, go back one second and show the scene from there",
            "take the clip one second into the past",
            "roll the footage back by one second",
            "make the clip commence one second before it does now",
        ),
    },
    "temporal/restart": {
        "RAVE": (
            "rewind to the very start, when the {obj} was just launched",
            "show the scene from the beginning of the throw",
            "go back to the moment the {obj} was set in motion",
            "show how this scene started",
            "replay the scene from its first instant",
            # added in v2 (5-7 train, 8 val, 9 test)
            "show the clip from the very beginning, when the {obj} had just started moving",
            "take me back to when the {obj} first started moving",
            "go back to the start of the scene and show it from there",
            "rewind all the way to the outset of the {obj}'s motion",
            "show the scene from its inception, the instant the {obj} was sent off",
        ),
    },
    "temporal/impact": {
        "RAVE": (
            "show the moment the {obj} hits the floor",
            "start the clip when the {obj} first lands",
            "jump to the instant the {obj} touches the ground",
            "skip ahead to when the {obj} comes down",
            "cut to the landing of the {obj}",
            # added in v2 (5-7 train, 8 val, 9 test)
            "fast-forward to when the {obj} reaches the floor",
            "show the clip from the moment the {obj} lands on the ground",
            "hey, begin the clip right as the {obj} hits the ground",
            "jump to the touchdown of the {obj}",
            "begin right when the {obj} first makes contact with the floor",
        ),
    },
    "temporal/next": {
        "ICVG": (
            "what happens next?",
            "continue the scene: show the following moments",
            "show what comes right after this clip",
            "predict the next part of this scene",
            "keep the action going and show the following clip",
            # added in v2 (5-7 train, 8 val, 9 test)
            "show the next clip",
            "hey, what happens after this?",
            "carry on from where this clip ends",
            "extrapolate the scene into the moments right after this clip",
            "forecast what unfolds right after this clip",
        ),
    },
    "temporal/rest": {
        "ICVG": (
            "what will it look like when everything has stopped moving?",
            "show the scene once the {obj} comes to rest",
            "fast-forward to when all motion has died down",
            "show the final resting state of the scene",
            "skip to the moment the {obj} stops",
            # added in v2 (5-7 train, 8 val, 9 test)
            "show the scene after everything has come to a stop",
            "skip ahead to when nothing is moving anymore",
            "what does it look like once the {obj} and everything else have stopped?",
            "jump to when the scene has settled and nothing moves",
            "show the scene once it is completely still, with the {obj} motionless",
        ),
    },
    "causal/harder": {
        "RAVE": (
            "what if the {obj} had been pushed twice as hard?",
            "show this with the {obj} given double the push",
            "imagine the {obj} started twice as fast",
            "redo the clip with a push on the {obj} twice as strong",
            "what would happen if the {obj} were launched with twice the speed?",
            # added in v2 (5-7 train, 8 val, 9 test)
            "push the {obj} twice as hard",
            "hey, what if the {obj} got a push two times stronger?",
            "give the {obj} double the launch speed and replay the clip",
            "redo this with the {obj}'s push doubled",
            "what if someone had shoved the {obj} with twice the force?",
        ),
        "ICVG": (
            "had the {obj} been pushed twice as hard, what would follow?",
            "if the {obj} had started twice as fast, show the next moments",
            "continue the scene as if the {obj} had been pushed with double force",
            "suppose the {obj} got twice the push: what comes after this clip?",
            "show what follows if the {obj} had been launched twice as fast",
            # added in v2 (5-7 train, 8 val, 9 test)
            "push the {obj} twice as hard and show what happens after this clip",
            "what comes next if the {obj} had set off twice as fast?",
            "show the next clip, but with the {obj} pushed two times harder",
            "continue from here as though the {obj}'s starting speed had been doubled",
            "if the {obj} had received a shove twice as strong, what unfolds after this clip?",
        ),
    },
    "causal/no_push": {
        "RAVE": (
            "what if nothing had pushed the {obj}?",
            "show the clip as if the {obj} had never been set in motion",
            "imagine nobody touched the {obj}",
            "redo this with the {obj} left alone",
            "what would the scene look like without the push on the {obj}?",
            # added in v2 (5-7 train, 8 val, 9 test)
            "what if the {obj} had never been pushed?",
            "show the clip as if nobody had ever given the {obj} a push",
            "take away the push on the {obj} and replay the clip",
            "what if the {obj} had never been propelled at all?",
            "leave the {obj} undisturbed and replay the clip",
        ),
    },
    "causal/reverse": {
        "RAVE": (
            "what if the {obj} had been pushed the other way?",
            "show this with the {obj} pushed in the opposite direction",
            "imagine the push on the {obj} came from the other side",
            "redo the clip with the {obj} sent the opposite way",
            "what would happen if the {obj} moved off in the reverse direction?",
            # added in v2 (5-7 train, 8 val, 9 test)
            "push the {obj} the other way instead",
            "what if the {obj} had gone in the opposite direction at the same speed?",
            "hey, flip the direction of the push on the {obj}",
            "send the {obj} backwards, just as fast, instead of the way it went",
            "invert the direction the {obj} was pushed in, keeping the same speed",
        ),
    },
    "causal/no_wall": {
        "RAVE": (
            "what if the wall were not there?",
            "remove the wall and show what the {obj} would do",
            "imagine there had never been a wall",
            "show the clip without the barrier",
            "what would happen to the {obj} with no wall in the way?",
            # added in v2 (5-7 train, 8 val, 9 test)
            "take out the wall",
            "hey, what if we got rid of the wall?",
            "delete the wall and show how the {obj} moves then",
            "erase the barrier from the scene",
            "what if the obstacle had been absent?",
        ),
        "ICVG": (
            "if the wall had not been there, what would come next?",
            "without the wall, show the moments after this clip",
            "suppose there were no barrier: continue the scene",
            "show what follows if the wall had never existed",
            "imagine the wall gone from the start: what happens after this?",
            # added in v2 (5-7 train, 8 val, 9 test)
            "remove the wall and show what happens next",
            "what would come after this clip if there were no wall?",
            "take the wall away from the start and continue the scene",
            "erase the wall and predict the following clip",
            "if the obstacle had never existed, what would the following clip be?",
        ),
    },
    "causal/heavier": {
        "RAVE": (
            "what if the {obj} were much heavier?",
            "show this as if the {obj} weighed ten times as much",
            "imagine the {obj} were made of lead",
            "redo the collision with a far heavier {obj}",
            "what would the {other} do if the {obj} were very heavy?",
            # added in v2 (5-7 train, 8 val, 9 test)
            "make the {obj} much heavier",
            "hey, what if the {obj} weighed a lot more?",
            "redo this with the {obj} ten times heavier, and show what the {other} does",
            "give the {obj} ten times its mass",
            "what if the {obj} were tenfold heavier when the {other} bumps into it?",
        ),
        "ICVG": (
            "if the {obj} had been much heavier, what would follow?",
            "suppose the {obj} weighed ten times as much: show the next moments",
            "continue the scene as if the {obj} were made of lead",
            "show what comes after this clip with a far heavier {obj}",
            "imagine a very heavy {obj}: what happens next?",
            # added in v2 (5-7 train, 8 val, 9 test)
            "make the {obj} much heavier and show what happens next",
            "what comes next if the {obj} weighed ten times more?",
            "continue the scene with a {obj} that is far heavier",
            "if the {obj} had ten times the mass, what follows after this clip?",
            "if the {obj} were tenfold heavier, how would the {other} behave in the next clip?",
        ),
    },
    "spatial/swap_extremes": {
        "RAVE": (
            "put the smallest object where the largest one is, and the largest where the smallest was",
            "swap the biggest and the smallest object",
            "exchange the places of the largest and the smallest thing",
            "let the tiniest object and the biggest one trade places",
            "switch the positions of the smallest and largest objects",
            # added in v2 (5-7 train, 8 val, 9 test)
            "swap the largest and smallest objects",
            "hey, switch the biggest thing with the smallest thing",
            "move the largest object to where the smallest one is, and vice versa",
            "interchange the largest and the smallest objects",
            "transpose the biggest and the smallest object",
        ),
    },
    "spatial/swap_circles": {
        "RAVE": (
            "swap the two balls",
            "let the two round objects trade places",
            "exchange the positions of the two circles",
            "switch the two balls around",
            "put each ball where the other one is",
            # added in v2 (5-7 train, 8 val, 9 test)
            "swap the two circles",
            "hey, switch the places of the two balls",
            "move each circle to the other circle's spot",
            "the two discs should trade places",
            "make the two circular objects exchange spots",
        ),
    },
    "spatial/mirror": {
        "RAVE": (
            "mirror the scene left to right",
            "show the scene as seen in a mirror",
            "flip everything horizontally",
            "show the same clip reflected left-right",
            "swap left and right in this scene",
            # added in v2 (5-7 train, 8 val, 9 test)
            "flip the scene left to right",
            "show a mirror image of this clip",
            "reflect the whole scene so left becomes right and right becomes left",
            "make a left-right reversed version of the clip",
            "laterally invert the whole clip",
        ),
    },
    "spatial/reflect_left": {
        "RAVE": (
            "move whatever is left of the {anchor} to the same distance on its right",
            "put everything on the left of the {anchor} on its other side, just as far away",
            "reflect the objects left of the {anchor} to its right",
            "whatever lies to the left of the {anchor} should be to its right instead, at the same distance",
            "flip the things left of the {anchor} over to its right side",
            # added in v2 (5-7 train, 8 val, 9 test)
            "move every object left of the {anchor} to its right side, keeping the same distance",
            "mirror the things on the left of the {anchor} across it to the right",
            "hey, whatever is to the left of the {anchor}, put it on the right at the same distance",
            "carry each object on the {anchor}'s left over to the equivalent spot on its right",
            "relocate the objects left of the {anchor} to matching positions on its right, equally far from it",
        ),
    },
    "spatial/hide": {
        "RAVE": (
            "move the {obj} behind the screen",
            "hide the {obj} behind the grey panel",
            "put the {obj} where it cannot be seen, behind the screen",
            "tuck the {obj} away behind the screen",
            "place the {obj} out of sight behind the panel",
            # added in v2 (5-7 train, 8 val, 9 test)
            "put the {obj} behind the screen",
            "hey, hide the {obj} behind the panel",
            "move the {obj} so the screen covers it",
            "conceal the {obj} behind the screen",
            "stash the {obj} behind the grey panel so it's invisible",
        ),
        "ICVG": (
            "next, the {obj} is moved behind the screen: show the scene after that",
            "show the scene after someone hides the {obj} behind the panel",
            "continue: the {obj} gets put behind the screen",
            "what does the scene look like after the {obj} is tucked behind the screen?",
            "show the following moment, once the {obj} is out of sight behind the panel",
            # added in v2 (5-7 train, 8 val, 9 test)
            "the {obj} gets moved behind the screen next: show the scene after",
            "hide the {obj} behind the panel and show the following moment",
            "what comes next, once someone puts the {obj} behind the screen?",
            "continue the scene after the {obj} has been concealed behind the panel",
            "show the next clip, in which the {obj} is obscured by the screen",
        ),
    },
    "spatial/sort": {
        "RAVE": (
            "rearrange the objects from smallest on the left to largest on the right, using the same spots",
            "order the objects by size, small to big from left to right, keeping their places",
            "sort the things by size, smallest leftmost, in the positions they occupy",
            "put the objects in order of size from left to right, using the existing spots",
            "line them up by size, the smallest at the left, the largest at the right, on the same spots",
            # added in v2 (5-7 train, 8 val, 9 test)
            "sort the objects by size from smallest on the left to largest on the right, in the same positions",
            "hey, line the objects up small to big, left to right, on the spots they're on now",
            "arrange the objects in increasing size from left to right without changing the spots",
            "reorder the objects so their sizes ascend from left to right, reusing the current positions",
            "rank the objects by size, tiniest leftmost to biggest rightmost, keeping the occupied spots",
        ),
    },
    "commonsense/night": {
        "RAVE": (
            "what if this happened at night?",
            "show the same scene after sunset",
            "make it night time",
            "show this clip as it would look in the dark evening",
            "imagine the scene at midnight",
            # added in v2 (5-7 train, 8 val, 9 test)
            "turn it into night",
            "show the scene in the dark of night",
            "hey, make it dark, like late at night",
            "show the same clip after nightfall",
            "show this scene well after sundown, in the dark",
        ),
    },
    "commonsense/day": {
        "RAVE": (
            "what if this happened in broad daylight?",
            "show the same scene at noon",
            "make it day time",
            "show this clip with the sun up",
            "imagine the scene in the morning light",
            # added in v2 (5-7 train, 8 val, 9 test)
            "turn it into daytime",
            "hey, what if it were the middle of the day?",
            "make it bright daylight",
            "show the clip after sunrise, in full daylight",
            "imagine the scene at midday, fully illuminated",
        ),
    },
    "commonsense/sun": {
        "RAVE": (
            "what if the ice were left in the hot sun?",
            "show this on a scorching summer day",
            "imagine it were very warm here",
            "show the clip as if it were a heatwave",
            "what would happen to the ice in hot weather?",
            # added in v2 (5-7 train, 8 val, 9 test)
            "make it really hot",
            "hey, what if the weather were hot?",
            "show the clip with the temperature turned way up, hot enough to melt the ice",
            "what if the weather were sweltering?",
            "what if the air were baking hot, so the ice thaws?",
        ),
        "ICVG": (
            "if it had been hot all along, what would come next?",
            "suppose a heatwave: show the following moments",
            "continue the scene as if it were a very warm day",
            "show what comes after this clip on a hot summer day",
            "imagine strong sunshine: what happens next?",
            # added in v2 (5-7 train, 8 val, 9 test)
            "make it hot and show what comes next",
            "what happens after this clip if the weather is very hot?",
            "continue the scene in hot weather",
            "if the weather had been sweltering, show the following clip",
            "suppose the air were baking hot all along: what comes next?",
        ),
    },
    "commonsense/freeze": {
        "RAVE": (
            "what if it were freezing?",
            "show this on a frosty winter day",
            "imagine the temperature were well below zero",
            "show the clip as if it were bitterly cold",
            "what would the ice and the water do in freezing weather?",
            # added in v2 (5-7 train, 8 val, 9 test)
            "make it freezing cold",
            "hey, what if it were below freezing?",
            "show the clip in icy winter weather",
            "what if the temperature plunged below freezing?",
            "what if the air here were frigid?",
        ),
    },
    "commonsense/tap": {
        "RAVE": (
            "what if the tap were left running?",
            "show this with the tap above the tank turned on",
            "imagine someone opened the tap",
            "show the clip with water flowing from the tap",
            "what would the tank look like with the tap running?",
            # added in v2 (5-7 train, 8 val, 9 test)
            "turn on the tap",
            "hey, what if someone left the tap on?",
            "show the tank filling up from the running tap",
            "open the faucet above the tank",
            "what if the spigot were opened so water streams into the tank?",
        ),
        "ICVG": (
            "if the tap had been left running, what would come next?",
            "suppose the tap was on all along: show the following moments",
            "continue the scene as if water were pouring from the tap",
            "show what comes after this clip with the tap open",
            "imagine the tap running: what happens next?",
            # added in v2 (5-7 train, 8 val, 9 test)
            "turn the tap on and show what comes next",
            "what happens after this clip if the tap is running?",
            "continue the scene with water running from the tap into the tank",
            "with the faucet open all along, show the next clip",
            "suppose the spigot had been left open: show the clip that follows",
        ),
    },
    "commonsense/drain": {
        "RAVE": (
            # all new in v2 (0-2, 5-7 train; 3, 8 val; 4, 9 test)
            "what if the drain at the bottom of the tank were open?",
            "show this with the tank's bottom outlet opened",
            "imagine someone pulled the plug at the bottom of the tank",
            "show the clip with water running out of the tank through its drain",
            "what would the tank look like if it were emptying through an open drain at its base?",
            "open the drain in the bottom of the tank",
            "hey, make the water level in the tank go down through the open drain",
            "let the water drain out of the tank through the bottom",
            "unplug the tank's outlet so the water recedes",
            "what if the tank's drain were open, so the water dwindles?",
        ),
        "ICVG": (
            # all new in v2 (0-2, 5-7 train; 3, 8 val; 4, 9 test)
            "if the drain at the bottom of the tank had been open, what would come next?",
            "suppose the tank's outlet was open all along: show the following moments",
            "continue the scene as if water were flowing out through the drain",
            "show what comes after this clip with the drain open",
            "imagine the tank draining: what happens next?",
            "open the drain of the tank and show what happens next",
            "hey, what if someone pulled the plug on the tank? show the next clip",
            "what comes after this clip if water is running out of the bottom of the tank?",
            "with the tank unplugged from the start, show the clip that follows as the water recedes",
            "suppose the tank's bottom outlet were open all along: show the next clip, with the water ebbing away",
        ),
    },
    "commonsense/made_of_ice": {
        "RAVE": (
            "what if the {obj} were made of ice?",
            "show this with the {obj} carved from ice",
            "imagine the {obj} were a block of ice on this hot day",
            "redo the clip with an ice {obj}",
            "what would become of the {obj} if it were ice?",
            # added in v2 (5-7 train, 8 val, 9 test)
            "make the {obj} out of ice",
            "hey, what if the {obj} was ice?",
            "replace the {obj} with an ice one of the same shape and size",
            "what if the {obj} were frozen water?",
            "what if the {obj} had been sculpted from ice?",
        ),
    },
}
